import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { nkeys } from '@nats-io/nats-core';
import { natsPermissions, type NatsRole } from '../protocol/index.ts';
import type { NatsCredentials } from '../adapters/nats.ts';

export interface IssuedUser {
  role: NatsRole;
  credentials: NatsCredentials;
  /** the public nkey the server config names */
  publicKey: string;
}

/**
 * Makes one nkey user per role, its seed in DIR/<user>.nk (0600, for the component that uses
 * it), and returns what the server config needs.
 */
export async function issueNatsUsers(dir: string, roles: readonly NatsRole[]): Promise<IssuedUser[]> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const out: IssuedUser[] = [];
  for (const role of roles) {
    const perms = natsPermissions(role);
    const pair = nkeys.createUser();
    const seedFile = join(dir, `${perms.user}.nk`);
    await writeFile(seedFile, new TextDecoder().decode(pair.getSeed()), { mode: 0o600 });
    await chmod(seedFile, 0o600);
    out.push({ role, publicKey: pair.getPublicKey(), credentials: { seedFile, user: perms.user } });
  }
  return out;
}

/**
 * The nats-server `authorization` block for these users: each an nkey with its allow-lists. No
 * user, no connection: the server has no anonymous access at all.
 */
export function renderAuthorization(users: ReadonlyArray<Pick<IssuedUser, 'role' | 'publicKey'>>): string {
  const list = (xs: readonly string[]): string => `[${xs.map((x) => JSON.stringify(x)).join(', ')}]`;
  const entries = users.map(({ role, publicKey }) => {
    const p = natsPermissions(role);
    const responses = p.allowResponses ? ', allow_responses: true' : '';
    return `    { nkey: ${JSON.stringify(publicKey)}, permissions: { publish: { allow: ${list(p.publish)} }, subscribe: { allow: ${list(p.subscribe)} }${responses} } }`;
  });
  return `authorization {\n  users = [\n${entries.join(',\n')}\n  ]\n}\n`;
}
