import { createHash, randomUUID } from 'node:crypto';
import { mkdir, readdir, rename, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { cloneSeedRoot, type CloneRunner } from './buildkit-seed-clone.ts';

/** Ready roots a node keeps: one serves the next fresh worker; more would only cost inodes. */
const KEEP = 1;
/** a copy under way (cloneSeedRoot's `.tmp`) this old was left by a worker that died */
const ABANDONED_MS = 10 * 60_000;

/**
 * The node's copies of its BuildKit seed made ahead of need (cloneSeedRoot), beside the seed, in
 * `ready/`. A fresh worker takes one with a rename instead of copying the seed while its first build
 * waits: the copy takes ~0.3 s on a quiet node, 0.7–0.9 s beside the build's own start on two cores,
 * and the daemon cannot start before it is done. Whoever takes one makes the next after its build
 * (refill), at a lower CPU priority; the node's seed fill makes the first.
 *
 * A ready root is a copy no daemon ever ran on: taking it serves no tenant anything another's
 * build made. Each is named for the seed it copies (its databases' inode, size and time), so a
 * seed filled again (the local fleet's `fleet up` on the same state) leaves no worker taking an
 * older copy; those are removed at the next refill.
 */
export class ReadyRoots {
  private readonly dir: string;

  constructor(
    private readonly seed: string,
    private readonly run: CloneRunner,
  ) {
    this.dir = join(dirname(seed), 'ready');
  }

  /** Moves a ready root of the current seed to DEST (absent, same filesystem); false when there is none to take. */
  async take(dest: string): Promise<boolean> {
    const name = await this.name().catch(() => null);
    if (name === null) return false;
    await mkdir(dirname(dest), { recursive: true, mode: 0o700 });
    for (const entry of await readdir(this.dir).catch(() => [])) {
      if (!isReady(entry, name)) continue;
      // Another worker may take the same one first: the loser's rename finds it gone.
      if (await rename(join(this.dir, entry), dest).then(() => true, () => false)) return true;
    }
    return false;
  }

  /** Makes ready roots up to KEEP of the current seed, and removes the ones a former seed left. */
  async refill(): Promise<void> {
    const name = await this.name();
    // as the build user: a fill run by root makes it for the workers
    await execa('mkdir', ['-p', '-m', '700', this.dir], { ...this.run, extendEnv: false, stdin: 'ignore' });
    const entries = await readdir(this.dir);
    const stale = [];
    for (const entry of entries) {
      if (isReady(entry, name)) continue;
      if (entry.startsWith(`${name}-`) && Date.now() - (await stat(join(this.dir, entry)).then((s) => s.mtimeMs, () => 0)) < ABANDONED_MS) continue;
      stale.push(join(this.dir, entry));
    }
    if (stale.length > 0) await execa('rootlesskit', ['rm', '-rf', ...stale], { ...this.run, extendEnv: false, stdin: 'ignore', reject: false });
    const ready = entries.filter((e) => isReady(e, name)).length;
    for (let i = ready; i < KEEP; i++) {
      const dest = join(this.dir, `${name}-${randomUUID().slice(0, 8)}`);
      if (!(await cloneSeedRoot(this.seed, dest, this.run, { background: true }))) throw new Error(`could not copy ${this.seed} to ${dest}`);
    }
  }

  /** The current seed's name: what its databases are now (a fill writes all three). */
  private async name(): Promise<string> {
    const files = ['cache.db', 'runc-overlayfs/metadata_v2.db', 'runc-overlayfs/snapshots/metadata.db'];
    const stats = await Promise.all(files.map((f) => stat(join(this.seed, f), { bigint: true })));
    return createHash('sha256').update(stats.map((s) => `${s.ino}:${s.size}:${s.mtimeNs}`).join('\n')).digest('hex').slice(0, 12);
  }
}

/** a finished copy of the seed named NAME (a copy under way ends in `.tmp`) */
function isReady(entry: string, name: string): boolean {
  return new RegExp(`^${name}-[0-9a-f]{8}$`).test(entry);
}
