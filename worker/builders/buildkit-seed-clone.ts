import { join } from 'node:path';
import { execa } from 'execa';

/**
 * Files of a BuildKit root that are never written once there: content-store blobs (named by
 * digest) and committed snapshots' files (overlay lower dirs; a step writing one copies it up into
 * its own snapshot). Everything else (the bolt databases above all) is written in place by the
 * daemon that owns the root.
 */
const IMMUTABLE = ['runc-overlayfs/content/blobs', 'runc-overlayfs/snapshots/snapshots/*/fs'];

/** A BuildKit root's content store: laid out as an OCI layout's blobs (`blobs/sha256/…`). */
export function contentStoreOf(root: string): string {
  return join(root, 'runc-overlayfs', 'content');
}

/** Whom the copy runs as: the build user (the worker itself, or root's fill naming the user's ids). */
export interface CloneRunner {
  env: Record<string, string>;
  uid?: number;
  gid?: number;
}

/**
 * Makes DEST a BuildKit root of its own with what the node's seed root holds (buildkit-seed.ts:
 * the platform's images unpacked): the immutable files hard-linked (no data written: ~0.3 s on a
 * quiet node for the three official images, ~11,000 entries, 0.7–0.9 s beside a build's start on
 * two cores, against 10 s of unpacking `jdk17` alone), every other file copied, every directory new.
 * Run in a user namespace of the build user's (rootlesskit), where the seed's files, owned by its
 * subordinate ids, may be linked and read. Same filesystem only; false when it could not (DEST is
 * then absent and the daemon starts empty). BACKGROUND: made ahead of need (buildkit-ready-roots.ts),
 * at a lower CPU priority than the builds beside it.
 */
export async function cloneSeedRoot(seed: string, dest: string, run: CloneRunner, { background = false } = {}): Promise<boolean> {
  // the immutable trees are pruned, not walked: they hold nearly every file
  const immutable = IMMUTABLE.map((p) => `-path "$2.tmp/${p}"`).join(' -o ');
  const script = [
    'set -e',
    'rm -rf "$2.tmp" "$2"',
    'mkdir -p "$(dirname "$2")"',
    'cp -al "$1" "$2.tmp"',
    `find "$2.tmp" \\( ${immutable} \\) -prune -o -type f -exec sh -c 'for f; do cp -p "$f" "$f.copy" && mv -f "$f.copy" "$f"; done' sh {} +`,
    'mv "$2.tmp" "$2"',
  ].join('\n');
  const opts = { ...run, extendEnv: false, stdin: 'ignore', reject: false } as const;
  const copy = ['rootlesskit', 'sh', '-c', script, 'sh', seed, dest];
  const [command = 'rootlesskit', ...args] = background ? ['nice', '-n', '10', ...copy] : copy;
  if ((await execa(command, args, opts)).exitCode === 0) return true;
  await execa('rootlesskit', ['rm', '-rf', `${dest}.tmp`, dest], opts);
  return false;
}
