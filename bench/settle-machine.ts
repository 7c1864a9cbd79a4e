import { writeFile } from 'node:fs/promises';
import { execa } from 'execa';

/** Why the page cache could not be dropped (first reason seen), if it could not. */
let notDropped: string | undefined;

/**
 * Gives a measurement the same start as any other, outside its clock: what earlier work left
 * dirty is written back, then (as root) the kernel's clean page cache is dropped.
 * - The write-back: without it a measurement shares the disk with the one before it. The
 *   builders bench runs raw cold, raw warm, then the fleet's builds, and the fleet's cold build
 *   started while raw's two builds' layers and removed storage (over 1 GB) were still being
 *   written back; `bench all` started its scale section under a CI run's write-back.
 * - The drop: this machine's root filesystem is ext4 without a journal, where allocating an inode
 *   skips, one by one, every inode deleted in the last 60 s whose inode-table block is still
 *   cached (ext4's `recently_deleted`, seen with `perf`). A build right after another's storage
 *   was removed spent ~10 s of system time creating its base's files instead of ~2 s: a pull of
 *   `jdk17` took 4 s or 11 s depending on what the measurement before it had deleted. Dropping the
 *   cache forgets those blocks. (A journaled ext4 or XFS does not do this scan.)
 */
export async function settleMachine(): Promise<void> {
  await execa('sync');
  try {
    await writeFile('/proc/sys/vm/drop_caches', '1\n');
  } catch (e) {
    // not root, or /proc/sys read-only: the figures stand, with the noise described above
    notDropped ??= e instanceof Error ? e.message : String(e);
  }
}

/** Why settleMachine could not drop the page cache, if it could not (printed beside the figures). */
export function pageCacheNotDropped(): string | undefined {
  return notDropped;
}
