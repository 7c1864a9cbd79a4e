import { chmod, chown, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildUser } from '../../node/host.ts';

/** A pool's secrets dir (one file per id, `value\n`), private to the build user the workers run as. */
export async function secretsDir(values: Readonly<Record<string, string>>): Promise<string> {
  const user = await buildUser();
  const dir = await mkdtemp(join(tmpdir(), 'fleet-secrets-'));
  for (const [id, value] of Object.entries(values)) {
    await writeFile(join(dir, id), `${value}\n`, { mode: 0o600 });
    if (user.switchUser) await chown(join(dir, id), user.uid, user.gid);
  }
  if (user.switchUser) await chown(dir, user.uid, user.gid);
  await chmod(dir, 0o700);
  return dir;
}
