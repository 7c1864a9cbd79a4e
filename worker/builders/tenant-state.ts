import { createHash } from 'node:crypto';
import { mkdir, readdir, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';

/** How many tenants' kept state a worker holds at once; past it, the least recently used goes. */
export const KEPT_TENANT_STATES = 4;

/**
 * What a builder keeps between builds (BuildKit's root with its instruction cache, buildah's image
 * store with its intermediate images) is one directory per tenant. A builder's local cache key
 * covers the base, the instruction and the files it copies, not what a RUN step reads from a
 * secret mount or the network: one tenant's build would otherwise be served a layer another
 * tenant's build made (derived from a secret the second tenant was never granted), or find a
 * layer the other planted for it. The tenant's own next build still finds its cache.
 *
 * At most `keep` directories stay, the least recently used removed (by `remove`: the files are
 * the build user's subordinate ids, so the builder's own user namespace removes them). Use is
 * recorded as the directory's mtime, so the order survives a worker restart.
 */
export class TenantState {
  constructor(
    private readonly root: string,
    private readonly remove: (dir: string) => Promise<void>,
    private readonly keep = KEPT_TENANT_STATES,
  ) {}

  /**
   * The directory of the scope, marked used now (`created`: it was not there); the least recently
   * used past `keep` are removed.
   */
  async dir(scope: string | undefined): Promise<{ dir: string; created: boolean }> {
    const dir = join(this.root, scopeName(scope));
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    const created = await mkdir(dir, { mode: 0o700 }).then(() => true, (e: unknown) => {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e;
    });
    const now = new Date();
    await utimes(dir, now, now);
    const others = await Promise.all(
      (await readdir(this.root)).filter((name) => join(this.root, name) !== dir).map(async (name) => ({ name, used: (await stat(join(this.root, name))).mtimeMs })),
    );
    others.sort((a, b) => b.used - a.used);
    for (const { name } of others.slice(Math.max(0, this.keep - 1))) await this.remove(join(this.root, name));
    return { dir, created };
  }
}

/** A directory name of the scope's own: short (run roots have length limits), no path characters. */
export function scopeName(scope: string | undefined): string {
  return createHash('sha256').update(scope ?? '').digest('hex').slice(0, 16);
}
