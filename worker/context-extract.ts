import { once } from 'node:events';
import { constants, createReadStream } from 'node:fs';
import { copyFile, mkdir, open, stat, symlink } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { pipeline } from 'node:stream';
import { pipeline as pipelineAsync } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import { ErrorCode, FleetError } from '../protocol/index.ts';

export interface ExtractLimits {
  maxEntries: number;
  /** total bytes of all files once unpacked */
  maxBytes: number;
  /** unpacked bytes per compressed byte, above `ratioFloorBytes` */
  maxRatio: number;
  ratioFloorBytes: number;
}

export const DEFAULT_EXTRACT_LIMITS: ExtractLimits = {
  maxEntries: 100_000,
  maxBytes: 4 * 1024 ** 3,
  maxRatio: 200,
  ratioFloorBytes: 64 * 1024 ** 2,
};

type Kind = 'dir' | 'file' | 'symlink';

function refuse(entry: string, rule: string): FleetError {
  return new FleetError(ErrorCode.E_CONTEXT_INVALID, `context entry "${entry}" refused: ${rule}`);
}

/**
 * Unpacks a context tar.gz into `dir`, which must be new and empty. This is a security
 * boundary: the archive comes from whoever submitted the build. Every entry is checked before
 * it is written, files are created exclusively (never through an existing path or link), and
 * size is budgeted from the headers so a decompression bomb is refused before it is written.
 */
export async function extractContext(file: string, dir: string, limits: ExtractLimits = DEFAULT_EXTRACT_LIMITS): Promise<{ entries: number; bytes: number }> {
  const compressed = (await stat(file)).size;
  const budget = Math.min(limits.maxBytes, Math.max(limits.ratioFloorBytes, compressed * limits.maxRatio));
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const tree = new ContextTree(dir);
  let entries = 0;
  let bytes = 0;
  let failure: FleetError | null = null;
  let chain = Promise.resolve();

  const handle = async (entry: ReadEntry): Promise<void> => {
    entries += 1;
    if (entries > limits.maxEntries) throw refuse(entry.path, `more than ${limits.maxEntries} entries`);
    if (entry.type === 'File' || entry.type === 'OldFile' || entry.type === 'ContiguousFile') {
      bytes += entry.size ?? 0;
      if (bytes > budget) {
        throw refuse(
          entry.path,
          bytes > limits.maxBytes
            ? `context unpacks to more than ${limits.maxBytes} bytes`
            : `compression ratio above ${limits.maxRatio}:1 (${compressed} compressed bytes would unpack to over ${bytes})`,
        );
      }
    }
    await tree.add(entry);
  };

  const parser = new Parser({
    strict: true,
    noResume: true,
    onReadEntry: (entry: ReadEntry) => {
      chain = chain
        .then(() => (failure === null ? handle(entry) : undefined))
        .catch((e: unknown) => {
          failure ??= e instanceof FleetError ? e : refuse(entry.path, e instanceof Error ? e.message : String(e));
        })
        .finally(() => entry.resume());
    },
  });
  const parsed = new Promise<void>((resolve, reject) => {
    parser.on('end', resolve);
    parser.on('error', reject);
  });
  // Ours, not the parser's, gunzip: we also cap the raw stream (padding, junk after the end).
  const tarStream = pipeline(createReadStream(file), createGunzip(), () => undefined);
  const rawCap = budget + (limits.maxEntries + 4) * 1024;
  let raw = 0;
  try {
    for await (const chunk of tarStream as AsyncIterable<Buffer>) {
      raw += chunk.length;
      if (raw > rawCap) throw refuse('(archive)', `unpacks to more than ${rawCap} bytes`);
      if (failure !== null) break;
      if (!parser.write(chunk)) await Promise.race([once(parser, 'drain'), chain]);
    }
    if (failure === null) {
      parser.end();
      await parsed;
    }
    await chain;
  } catch (e) {
    tarStream.destroy();
    if (e instanceof FleetError) throw e;
    throw new FleetError(ErrorCode.E_CONTEXT_INVALID, `context is not a readable tar.gz: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (failure !== null) {
    tarStream.destroy();
    throw failure;
  }
  return { entries, bytes };
}

/** What has been written so far, so that no entry is written through or over another. */
class ContextTree {
  private readonly kinds = new Map<string, Kind>([['', 'dir']]);
  /** every path some symlink's target walks through; none may become a symlink later */
  private readonly traversed = new Set<string>();

  constructor(private readonly root: string) {}

  async add(entry: ReadEntry): Promise<void> {
    const rel = this.checkPath(entry.path);
    if (rel === '') return entry.type === 'Directory' ? undefined : Promise.reject(refuse(entry.path, 'the context root must be a directory'));
    if (((entry.mode ?? 0) & 0o6000) !== 0) throw refuse(rel, 'setuid/setgid bit');
    this.checkParents(rel);
    const existing = this.kinds.get(rel);
    if (existing !== undefined && !(existing === 'dir' && entry.type === 'Directory')) {
      throw refuse(rel, `path used twice (already a ${existing})`);
    }
    const dest = join(this.root, rel);
    switch (entry.type) {
      case 'Directory':
        await this.mkdirs(rel);
        return;
      case 'File':
      case 'OldFile':
      case 'ContiguousFile': {
        await this.mkdirs(posix.dirname(rel));
        // 'wx' = O_CREAT|O_EXCL: never follows or overwrites anything already there.
        const fh = await open(dest, 'wx', ((entry.mode ?? 0) & 0o111) !== 0 ? 0o755 : 0o644);
        await pipelineAsync(entry, fh.createWriteStream());
        this.kinds.set(rel, 'file');
        return;
      }
      case 'SymbolicLink': {
        this.checkSymlink(rel, entry.linkpath ?? '');
        await this.mkdirs(posix.dirname(rel));
        await symlink(entry.linkpath ?? '', dest);
        this.kinds.set(rel, 'symlink');
        return;
      }
      case 'Link': {
        const target = this.checkPath(entry.linkpath ?? '');
        if (this.kinds.get(target) !== 'file') throw refuse(rel, `hard link to "${entry.linkpath ?? ''}", which is not a file earlier in the context`);
        await this.mkdirs(posix.dirname(rel));
        // A copy, not a link: the result is the same for a build and cannot alias anything.
        await copyFile(join(this.root, target), dest, constants.COPYFILE_EXCL);
        this.kinds.set(rel, 'file');
        return;
      }
      default:
        throw refuse(rel, `entry type ${entry.type} is not allowed (only files, directories and links)`);
    }
  }

  /** Normalised relative path, or a refusal for absolute, "..", NUL or drive-letter paths. */
  private checkPath(path: string): string {
    if (path.includes('\0')) throw refuse(path, 'NUL in path');
    if (path.startsWith('/') || /^[A-Za-z]:[\\/]/.test(path)) throw refuse(path, 'absolute path');
    if (path.split(/[\\/]/).includes('..')) throw refuse(path, '".." in path');
    const normal = posix.normalize(path).replace(/\/+$/, '');
    return normal === '.' ? '' : normal.replace(/^\.\//, '');
  }

  private checkParents(rel: string): void {
    for (let p = posix.dirname(rel); p !== '.' && p !== ''; p = posix.dirname(p)) {
      const kind = this.kinds.get(p);
      if (kind === 'symlink') throw refuse(rel, `written through the symlink "${p}"`);
      if (kind === 'file') throw refuse(rel, `parent "${p}" is a file`);
    }
    if (this.traversed.has(rel)) throw refuse(rel, 'an earlier symlink resolves through this path');
  }

  private checkSymlink(rel: string, target: string): void {
    if (target === '' || target.includes('\0')) throw refuse(rel, 'empty symlink target');
    if (target.startsWith('/')) throw refuse(rel, `symlink to the absolute path "${target}"`);
    const stack = posix.dirname(rel) === '.' ? [] : posix.dirname(rel).split('/');
    const parts = target.split('/').filter((p) => p !== '' && p !== '.');
    for (const [i, part] of parts.entries()) {
      if (part === '..') {
        if (stack.length === 0) throw refuse(rel, `symlink target "${target}" leaves the context`);
        stack.pop();
        continue;
      }
      stack.push(part);
      const at = stack.join('/');
      if (i < parts.length - 1 && this.kinds.get(at) === 'symlink') throw refuse(rel, `symlink target "${target}" resolves through the symlink "${at}"`);
      this.traversed.add(at);
    }
  }

  private async mkdirs(rel: string): Promise<void> {
    if (rel === '.' || rel === '') return;
    this.checkParents(rel);
    const kind = this.kinds.get(rel);
    if (kind === 'dir') return;
    if (kind !== undefined) throw refuse(rel, `needed as a directory but is a ${kind}`);
    await this.mkdirs(posix.dirname(rel));
    await mkdir(join(this.root, rel), { mode: 0o755 });
    this.kinds.set(rel, 'dir');
  }
}

