import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FleetClient } from '../../cli/client.ts';
import { ErrorCode, FleetError, type BuildView } from '../../protocol/index.ts';

export const OFFICIAL_BASE = { repository: 'official/base', tag: '1' } as const;
const BUSYBOX = '/bin/busybox';

/**
 * Builds the official base through the fleet itself (the platform eats its own cooking) and
 * returns its record. Idempotent: the build id is derived from the context digest, so the same
 * inputs are built once per fleet.
 */
export async function publishOfficialBase(client: FleetClient, signal?: AbortSignal): Promise<BuildView> {
  const dir = await mkdtemp(join(tmpdir(), 'fleet-official-'));
  try {
    await copyFile(fileURLToPath(new URL('./base/Dockerfile', import.meta.url)), join(dir, 'Dockerfile'));
    await copyFile(BUSYBOX, join(dir, 'busybox'));
    const { digest } = await client.uploadContext(dir);
    const id = `official-base-${OFFICIAL_BASE.tag}-${digest.slice(7, 19)}`;
    await client.submit({ id, context: { digest }, image: { repository: OFFICIAL_BASE.repository, tags: [OFFICIAL_BASE.tag] } });
    const done = await client.follow(id, {}, signal);
    if (done.state.phase !== 'pushed') {
      throw new FleetError(ErrorCode.E_BUILD_FAILED, `official base build ${id} ended ${done.state.phase}`);
    }
    return done;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
