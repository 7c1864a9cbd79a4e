import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { ObjectStore } from '@nats-io/obj';
import * as tar from 'tar';
import { ErrorCode, FleetError } from '../protocol/index.ts';

/** Downloads a context tarball by digest and refuses it unless its bytes hash to that digest. */
export async function downloadContext(store: ObjectStore, digest: string, file: string, signal: AbortSignal): Promise<void> {
  const result = await store.get(digest);
  if (result === null) throw new FleetError(ErrorCode.E_CONTEXT_MISSING, `build context ${digest} is not in the store`);
  const hash = createHash('sha256');
  const out = createWriteStream(file, { mode: 0o600 });
  const source = result.data.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        hash.update(chunk);
        controller.enqueue(chunk);
      },
    }),
  );
  await pipeline(source, out, { signal });
  const streamError = await result.error;
  if (streamError) throw new FleetError(ErrorCode.E_UNAVAILABLE, `context download failed: ${streamError.message}`);
  const actual = `sha256:${hash.digest('hex')}`;
  if (actual !== digest) throw new FleetError(ErrorCode.E_CONTEXT_INVALID, `context bytes hash to ${actual}, not ${digest}`);
}

/**
 * Extracts a context tarball into `dir`. Entries are checked in a listing pass first, so a bad
 * archive writes nothing: only regular files, directories and symlinks that stay inside the root;
 * no absolute or ".." paths; no setuid/setgid bits.
 */
export async function extractContext(file: string, dir: string): Promise<void> {
  const violations: string[] = [];
  try {
    await tar.t({
      file,
      strict: true,
      onReadEntry: (entry) => {
        const problem = entryProblem(entry.path, entry.type, entry.linkpath, entry.mode);
        if (problem !== null) violations.push(`${entry.path}: ${problem}`);
      },
    });
  } catch (e) {
    throw new FleetError(ErrorCode.E_CONTEXT_INVALID, `context is not a readable tar.gz: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (violations.length > 0) {
    throw new FleetError(ErrorCode.E_CONTEXT_INVALID, `context refused: ${violations.slice(0, 5).join('; ')}`);
  }
  await mkdir(dir, { recursive: true, mode: 0o755 });
  await tar.x({ file, cwd: dir, strict: true, preservePaths: false, preserveOwner: false, noMtime: true });
}

function entryProblem(path: string, type: string, linkpath: string | undefined, mode: number | undefined): string | null {
  const normal = posix.normalize(path);
  if (path.startsWith('/') || /^[A-Za-z]:/.test(path)) return 'absolute path';
  if (normal === '..' || normal.startsWith('../')) return 'path leaves the context';
  if (mode !== undefined && (mode & 0o6000) !== 0) return 'setuid/setgid bit';
  switch (type) {
    case 'File':
    case 'OldFile':
    case 'ContiguousFile':
    case 'Directory':
      return null;
    case 'SymbolicLink': {
      if (linkpath === undefined || linkpath.startsWith('/')) return 'symlink to an absolute path';
      const target = posix.normalize(posix.join(posix.dirname(normal), linkpath));
      return target === '..' || target.startsWith('../') ? 'symlink leaves the context' : null;
    }
    default:
      return `entry type ${type} is not allowed`;
  }
}
