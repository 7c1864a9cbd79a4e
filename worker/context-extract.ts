import { constants, createReadStream } from 'node:fs';
import { copyFile, mkdir, open, rm, rmdir, stat, symlink, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Header } from 'tar';
import { ErrorCode, FleetError } from '../protocol/index.ts';

export interface ExtractLimits {
  /** archive entries (files, directories, links) */
  maxEntries: number;
  /** total bytes of all files once unpacked, hard-link copies included */
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

/** Linux's PATH_MAX: a longer name could not be used by the builder anyway. */
export const MAX_PATH_BYTES = 4096;
/** Far deeper than any real source tree; bounds the work one entry can ask for. */
export const MAX_PATH_DEPTH = 256;
const MAX_NAME_BYTES = 255;
/** A pax or GNU long-name header only needs room for a path and a link target. */
const MAX_META_BYTES = 64 * 1024;
/** Headers that only describe the next entry; more in a row is a way to burn CPU without counting as entries. */
const MAX_META_IN_A_ROW = 8;
/** Paths remembered per entry allowed: an entry's missing parents and a symlink's target also take memory. */
const TRACKED_PER_ENTRY = 2;
const CHUNK = 64 * 1024;
const REMOVE_BATCH = 64;
/** Writes under way at once; small files are held in memory meanwhile, so at most WINDOW * SMALL_FILE. */
const WINDOW = 32;
const SMALL_FILE = 64 * 1024;
const WRITE_BATCH = 1024 * 1024;

/** Names in messages are cut: a refusal travels in a NATS message and a log line. */
const NAME_CHARS = 120;
const RULE_CHARS = 300;

function clip(s: string, max: number): string {
  if (s.length <= max) return s;
  const head = Math.ceil((max - 1) * 0.6);
  return `${s.slice(0, head)}…${s.slice(s.length - (max - 1 - head))}`;
}

/** JSON quoting also escapes control characters, so a name cannot forge a log line. */
function quote(name: string): string {
  return JSON.stringify(clip(name, NAME_CHARS));
}

function refuse(entry: string, rule: string): FleetError {
  return new FleetError(ErrorCode.E_CONTEXT_INVALID, `context entry ${quote(entry)} refused: ${clip(rule, RULE_CHARS)}`);
}

function unreadable(why: string): FleetError {
  return new FleetError(ErrorCode.E_CONTEXT_INVALID, `context is not a readable tar.gz: ${clip(why, RULE_CHARS)}`);
}

/** A function, not an inline test: the compiler would narrow `aborted` to false after a first look. */
function halt(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw stopped(signal);
}

function stopped(signal: AbortSignal): FleetError {
  const reason: unknown = signal.reason;
  if (reason instanceof FleetError) return reason;
  const timeout = reason instanceof Error && reason.name === 'TimeoutError';
  return new FleetError(timeout ? ErrorCode.E_TIMEOUT : ErrorCode.E_CANCELLED, `context extraction stopped: ${timeout ? 'timed out' : 'cancelled'}`, undefined, { cause: reason });
}

/**
 * Unpacks a context tar.gz into `dir`, which must be new and empty. This is a security
 * boundary: the archive comes from whoever submitted the build. Every entry is checked before
 * it is written, files are created exclusively (never through an existing path or link), and
 * size is budgeted from the headers so a decompression bomb is refused before it is written.
 *
 * The archive is read by pull, an entry at a time, with a bounded number of writes under way:
 * memory stays bounded whatever the entry count, and the work per entry is linear in its path,
 * so a hostile archive can neither hold the event loop nor grow the worker. `signal` stops it
 * between two reads or writes. On refusal or abort, `dir` is removed.
 */
export async function extractContext(
  file: string,
  dir: string,
  limits: ExtractLimits = DEFAULT_EXTRACT_LIMITS,
  signal?: AbortSignal,
): Promise<{ entries: number; bytes: number }> {
  halt(signal);
  const compressed = (await stat(file)).size;
  const budget = Math.min(limits.maxBytes, Math.max(limits.ratioFloorBytes, compressed * limits.maxRatio));
  const created = (await mkdir(dir, { recursive: true, mode: 0o755 })) !== undefined;
  // Ours, not tar's, gunzip, read by pull: decompression waits until the entries before have been
  // checked and their writes started, so nothing piles up in memory.
  const gunzip = pipeline(createReadStream(file, { highWaterMark: CHUNK }), createGunzip({ chunkSize: CHUNK }), () => undefined) as Readable;
  const onAbort = (): void => void gunzip.destroy();
  signal?.addEventListener('abort', onAbort, { once: true });
  const run = new Extraction(dir, limits, budget, compressed, new Blocks(gunzip[Symbol.asyncIterator]() as AsyncIterator<Buffer>, budget + (limits.maxEntries + 4) * 1024), signal);
  try {
    await run.all();
    return { entries: run.entries, bytes: run.bytes };
  } catch (e) {
    gunzip.destroy();
    // Nothing may still be writing into what is removed.
    await run.settle().catch(() => undefined);
    await run.removeAll(created).catch(() => undefined);
    halt(signal);
    if (e instanceof FleetError) throw e;
    throw unreadable(e instanceof Error ? e.message : String(e));
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/** The decompressed archive as 512-byte blocks and body bytes, pulled on demand. */
class Blocks {
  private chunk: Buffer = Buffer.alloc(0);
  private at = 0;
  private done = false;
  private raw = 0;

  constructor(
    private readonly source: AsyncIterator<Buffer>,
    /** bodies are budgeted from headers; this also caps padding, skipped bodies and junk after the end */
    private readonly rawCap: number,
  ) {}

  private async fill(): Promise<boolean> {
    while (this.at >= this.chunk.length) {
      if (this.done) return false;
      const next = await this.source.next();
      if (next.done === true) {
        this.done = true;
        return false;
      }
      this.raw += next.value.length;
      if (this.raw > this.rawCap) throw refuse('(archive)', `unpacks to more than ${this.rawCap} bytes`);
      this.chunk = next.value;
      this.at = 0;
    }
    return true;
  }

  /** The next block, or null at the end of the data. */
  async block(): Promise<Buffer | null> {
    if (this.at + 512 <= this.chunk.length) {
      this.at += 512;
      return this.chunk.subarray(this.at - 512, this.at);
    }
    const parts: Buffer[] = [];
    for (let need = 512; need > 0; ) {
      if (!(await this.fill())) {
        if (need === 512) return null;
        throw unreadable('truncated archive (a partial header)');
      }
      const n = Math.min(need, this.chunk.length - this.at);
      parts.push(this.chunk.subarray(this.at, this.at + n));
      this.at += n;
      need -= n;
    }
    return Buffer.concat(parts, 512);
  }

  /** Up to `max` (> 0) bytes of body; zlib never reuses a buffer it has handed out, so the view stays valid. */
  async some(max: number): Promise<Buffer> {
    if (!(await this.fill())) throw unreadable('truncated archive (an entry ends early)');
    const n = Math.min(max, this.chunk.length - this.at);
    this.at += n;
    return this.chunk.subarray(this.at - n, this.at);
  }

  async skip(n: number): Promise<void> {
    for (let left = n; left > 0; ) left -= (await this.some(left)).length;
  }

  async all(n: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    for (let left = n; left > 0; ) {
      const part = await this.some(left);
      parts.push(part);
      left -= part.length;
    }
    return parts.length === 1 && parts[0] !== undefined ? parts[0] : Buffer.concat(parts, n);
  }

  /** Reads what follows the end-of-archive marker, so that junk there still counts against the cap. */
  async drain(): Promise<void> {
    this.at = this.chunk.length;
    while (await this.fill()) this.at = this.chunk.length;
  }
}

type Kind = 'dir' | 'file' | 'symlink';
type Action = Kind | 'link';
const META_TYPES = ['ExtendedHeader', 'OldExtendedHeader', 'GlobalExtendedHeader', 'NextFileHasLongPath', 'OldGnuLongPath', 'NextFileHasLongLinkpath'] as const;
type MetaType = (typeof META_TYPES)[number];
const isMeta = (type: Header['type']): type is MetaType => (META_TYPES as readonly string[]).includes(type);

/**
 * What has been written so far, so that no entry is written through or over another. A tree, so
 * that checking an entry costs a walk of its own path and nothing else.
 */
interface PathNode {
  /** null: not on disk, only named by some symlink's target */
  kind: Kind | null;
  children: Map<string, PathNode> | null;
  /** some symlink's target walks through this path: it may never become a symlink */
  traversed: boolean;
  /** file bytes, which a hard link to it copies */
  size: number;
  /** settles once the path is on disk (or failed to be) */
  ready: Promise<void>;
}

const DONE = Promise.resolve();

const pad = (size: number): number => (512 - (size % 512)) % 512;

class Extraction {
  entries = 0;
  bytes = 0;
  private readonly root: PathNode = { kind: 'dir', children: new Map(), traversed: false, size: 0, ready: DONE };
  private readonly inflight = new Set<Promise<void>>();
  private failure: FleetError | null = null;
  /** resolves the main loop's wait for room in the window */
  private wake: () => void = () => undefined;
  private tracked = 0;
  /** what pax and GNU long-name headers say about the next entry */
  private next: { path?: string; linkpath?: string; size?: number } = {};

  constructor(
    private readonly dir: string,
    private readonly limits: ExtractLimits,
    private readonly budget: number,
    private readonly compressed: number,
    private readonly blocks: Blocks,
    private readonly signal: AbortSignal | undefined,
  ) {}

  async all(): Promise<void> {
    let zeros = 0;
    let metas = 0;
    for (;;) {
      halt(this.signal);
      const block = await this.blocks.block();
      // The end of the data without the two zero blocks is tolerated, as tar itself does.
      if (block === null) break;
      let header: Header;
      try {
        header = new Header(block);
      } catch (e) {
        throw unreadable(e instanceof Error ? e.message : String(e));
      }
      if (header.nullBlock) {
        zeros += 1;
        if (zeros === 2) {
          await this.blocks.drain();
          break;
        }
        continue;
      }
      zeros = 0;
      if (!header.cksumValid) throw unreadable('header checksum mismatch');
      const type = header.type;
      // A pax size is for the entry the pax header describes, not for a header in between.
      const size = (isMeta(type) ? undefined : this.next.size) ?? header.size ?? 0;
      if (!Number.isSafeInteger(size) || size < 0) throw unreadable('bad entry size');
      if (isMeta(type)) {
        metas += 1;
        if (metas > MAX_META_IN_A_ROW) throw unreadable(`more than ${MAX_META_IN_A_ROW} extended headers in a row`);
        await this.meta(type, header.path ?? '', size);
        continue;
      }
      metas = 0;
      const action = actionFor(type, this.next.path ?? header.path ?? '');
      const path = this.next.path ?? header.path ?? '';
      const linkpath = this.next.linkpath ?? header.linkpath ?? '';
      this.next = {};
      if (path === '') throw unreadable('an entry without a path');
      this.entries += 1;
      if (this.entries > this.limits.maxEntries) throw refuse(path, `more than ${this.limits.maxEntries} entries`);
      if ((action === 'link' || action === 'symlink') !== (linkpath !== '')) {
        throw refuse(path, linkpath === '' ? 'a link without a target' : 'a link target on an entry that is not a link');
      }
      if (((header.mode ?? 0) & 0o6000) !== 0) throw refuse(path, 'setuid/setgid bit');
      const read = await this.entry(action, path, linkpath, size, header.mode ?? 0);
      await this.blocks.skip(size - read + pad(size));
    }
    // An abort ends the data early; that is not the end of the archive.
    halt(this.signal);
    await this.settle();
  }

  private async meta(type: MetaType, name: string, size: number): Promise<void> {
    if (size > MAX_META_BYTES) throw refuse(name, `${type} header of ${size} bytes (at most ${MAX_META_BYTES})`);
    const body = await this.blocks.all(size);
    await this.blocks.skip(pad(size));
    switch (type) {
      case 'ExtendedHeader':
      case 'OldExtendedHeader':
        Object.assign(this.next, parsePax(body));
        return;
      case 'NextFileHasLongPath':
      case 'OldGnuLongPath':
        this.next.path = cString(body);
        return;
      case 'NextFileHasLongLinkpath':
        this.next.linkpath = cString(body);
        return;
      case 'GlobalExtendedHeader':
        // Says nothing we use (git archive puts its commit id there).
        return;
    }
  }

  /**
   * Checks one entry against the tree, then writes it. The tree is updated at once, so the next
   * entry is checked against it; the write itself may run in the background (small files, links,
   * directories), ordered after the parent directory and link target it needs. Returns how many
   * body bytes it read.
   */
  private async entry(action: Action, path: string, linkpath: string, size: number, mode: number): Promise<number> {
    const parts = relativeParts(path, path);
    if (parts.length === 0) {
      if (action !== 'dir') throw refuse(path, 'the context root must be a directory');
      return 0;
    }
    const rel = parts.join('/');
    const { chain, missing } = this.parentOf(parts, rel);
    const parent = chain[chain.length - 1] ?? this.root;
    const name = parts[parts.length - 1] ?? '';
    const existing = parent.children?.get(name);
    if (existing?.kind != null && !(existing.kind === 'dir' && action === 'dir')) throw refuse(rel, `path used twice (already a ${existing.kind})`);
    const dest = join(this.dir, rel);
    switch (action) {
      case 'dir': {
        if (existing?.kind === 'dir') return 0;
        await this.makeParents(chain, missing, parts);
        const node = this.place(parent, name, rel, 'dir', 0);
        await this.room();
        // the context's own permission bits, as a local `docker build` keeps them (setuid/setgid
        // were refused above); the owner always keeps what the builder needs to read and walk it
        node.ready = this.start(rel, [parent.ready], () => mkdir(dest, { mode: (mode & 0o777) | 0o700 }));
        return 0;
      }
      case 'file': {
        this.charge(rel, size);
        await this.makeParents(chain, missing, parts);
        const node = this.place(parent, name, rel, 'file', size);
        // 'wx' = O_CREAT|O_EXCL: never follows or overwrites anything already there.
        const flags = { flag: 'wx', mode: (mode & 0o777) | 0o600 };
        if (size <= SMALL_FILE) {
          const body = await this.blocks.all(size);
          await this.room();
          node.ready = this.start(rel, [parent.ready], () => writeFile(dest, body, flags));
          return size;
        }
        await parent.ready;
        this.rethrow();
        try {
          const fh = await open(dest, flags.flag, flags.mode);
          try {
            await this.stream(fh, size);
          } finally {
            await fh.close();
          }
        } catch (e) {
          throw e instanceof FleetError ? e : refuse(rel, e instanceof Error ? e.message : String(e));
        }
        return size;
      }
      case 'symlink': {
        if (existing?.traversed === true) throw refuse(rel, 'an earlier symlink resolves through this path');
        this.checkSymlink(rel, chain, linkpath);
        await this.makeParents(chain, missing, parts);
        const node = this.place(parent, name, rel, 'symlink', 0);
        await this.room();
        node.ready = this.start(rel, [parent.ready], () => symlink(linkpath, dest));
        return 0;
      }
      case 'link': {
        const targetParts = relativeParts(linkpath, rel);
        const target = this.find(targetParts);
        if (target?.kind !== 'file') throw refuse(rel, `hard link to ${quote(linkpath)}, which is not a file earlier in the context`);
        // A copy, not a link: the result is the same for a build and cannot alias anything. It
        // writes as many bytes as the file it copies, so it is budgeted like one.
        this.charge(rel, target.size);
        await this.makeParents(chain, missing, parts);
        const node = this.place(parent, name, rel, 'file', target.size);
        const from = join(this.dir, ...targetParts);
        await this.room();
        node.ready = this.start(rel, [parent.ready, target.ready], () =>
          copyFile(from, dest, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE),
        );
        return 0;
      }
    }
  }

  /**
   * A large body, in batches of up to WRITE_BATCH, one written while the next is read: one write
   * per decompressed chunk would wait on the thread pool for each. Holds at most two batches.
   */
  private async stream(fh: FileHandle, size: number): Promise<void> {
    const writing: { done: Promise<void>; failed: Error | null } = { done: DONE, failed: null };
    try {
      for (let left = size; left > 0; ) {
        const batch: Buffer[] = [];
        for (let n = 0; n < WRITE_BATCH && left > 0; ) {
          halt(this.signal);
          const piece = await this.blocks.some(Math.min(left, WRITE_BATCH - n));
          batch.push(piece);
          n += piece.length;
          left -= piece.length;
        }
        await writing.done;
        if (writing.failed !== null) throw writing.failed;
        writing.done = writeAll(fh, batch).catch((e: unknown) => {
          writing.failed = e instanceof Error ? e : new Error(String(e));
        });
      }
      await writing.done;
      if (writing.failed !== null) throw writing.failed;
    } finally {
      // The handle is closed next: no write may still be using it.
      await writing.done;
    }
  }

  /**
   * Writes are started (`start`, once what they need is on disk) when fewer than WINDOW are
   * under way (`room`): one at a time, each small file's open, write and close would wait in
   * turn on the thread pool. Their promises never reject; the first failure is kept, and
   * thrown by the next entry.
   */
  private async room(): Promise<void> {
    while (this.inflight.size >= WINDOW) await new Promise<void>((resolve) => (this.wake = resolve));
    this.rethrow();
  }

  private start(rel: string, after: Array<Promise<void>>, write: () => Promise<unknown>): Promise<void> {
    const done = Promise.all(after)
      .then(write)
      .then(
        () => undefined,
        (e: unknown) => {
          this.failure ??= refuse(rel, e instanceof Error ? e.message : String(e));
        },
      );
    this.inflight.add(done);
    void done.then(() => {
      this.inflight.delete(done);
      this.wake();
    });
    return done;
  }

  /** Waits for every background write, then throws the first that failed. */
  async settle(): Promise<void> {
    await Promise.all(this.inflight);
    this.rethrow();
  }

  private rethrow(): void {
    if (this.failure !== null) throw this.failure;
  }

  /**
   * Removes what was written, in small batches: fs.rm on a tree of 100,000 files holds the event
   * loop for a second or more. What the tree does not know of (a half-made mkdir -p) is left to
   * fs.rm, and only in a `dir` made here.
   */
  async removeAll(madeDir: boolean): Promise<void> {
    await this.removeUnder(this.root, this.dir);
    if (madeDir) await rm(this.dir, { recursive: true, force: true });
  }

  /** Depth first, a batch at a time even within one directory: listing 100,000 paths at once holds the loop too. */
  private async removeUnder(node: PathNode, path: string): Promise<void> {
    let batch: Array<Promise<void>> = [];
    for (const [name, child] of node.children ?? []) {
      const at = `${path}/${name}`;
      if (child.kind === 'dir') {
        await this.removeUnder(child, at);
        batch.push(rmdir(at).catch(() => undefined));
      } else if (child.kind !== null) {
        batch.push(unlink(at).catch(() => undefined));
      }
      if (batch.length >= REMOVE_BATCH) {
        await Promise.all(batch);
        batch = [];
      }
    }
    await Promise.all(batch);
  }

  private charge(rel: string, size: number): void {
    this.bytes += size;
    if (this.bytes > this.budget) {
      throw refuse(
        rel,
        this.bytes > this.limits.maxBytes
          ? `context unpacks to more than ${this.limits.maxBytes} bytes`
          : `compression ratio above ${this.limits.maxRatio}:1 (${this.compressed} compressed bytes would unpack to over ${this.bytes})`,
      );
    }
  }

  /**
   * Walks from the root to the entry's parent (`chain`, root first), refusing a walk through a
   * symlink or a file. `missing`: the parents not on disk yet, always the end of `chain`.
   */
  private parentOf(parts: string[], rel: string): { chain: PathNode[]; missing: PathNode[] } {
    const chain = [this.root];
    const missing: PathNode[] = [];
    for (let i = 0; i < parts.length - 1; i++) {
      const child = this.child(chain[i] ?? this.root, parts[i] ?? '', rel);
      if (child.kind === 'symlink') throw refuse(rel, `written through the symlink ${quote(parts.slice(0, i + 1).join('/'))}`);
      if (child.kind === 'file') throw refuse(rel, `parent ${quote(parts.slice(0, i + 1).join('/'))} is a file`);
      if (child.kind === null) missing.push(child);
      chain.push(child);
    }
    return { chain, missing };
  }

  /**
   * The parents a walk found missing (the end of `chain`), in one call: every directory above
   * them was made here, none is a link.
   */
  private async makeParents(chain: PathNode[], missing: PathNode[], parts: string[]): Promise<void> {
    if (missing.length === 0) return;
    const above = chain[chain.length - missing.length - 1] ?? this.root;
    await this.room();
    const made = this.start(parts.slice(0, -1).join('/'), [above.ready], () => mkdir(join(this.dir, ...parts.slice(0, -1)), { recursive: true, mode: 0o755 }));
    for (const node of missing) {
      node.kind = 'dir';
      node.ready = made;
    }
  }

  private child(node: PathNode, name: string, rel: string): PathNode {
    node.children ??= new Map();
    let child = node.children.get(name);
    if (child === undefined) {
      this.tracked += 1;
      if (this.tracked > this.limits.maxEntries * TRACKED_PER_ENTRY) {
        throw refuse(rel, `more than ${this.limits.maxEntries * TRACKED_PER_ENTRY} paths (entries, their directories and symlink targets)`);
      }
      child = { kind: null, children: null, traversed: false, size: 0, ready: DONE };
      node.children.set(name, child);
    }
    return child;
  }

  private place(parent: PathNode, name: string, rel: string, kind: Kind, size: number): PathNode {
    const node = this.child(parent, name, rel);
    node.kind = kind;
    node.size = size;
    return node;
  }

  /** An existing path, reached through directories only. */
  private find(parts: string[]): PathNode | undefined {
    let node: PathNode | undefined = this.root;
    for (const part of parts) {
      if (node?.kind !== 'dir') return undefined;
      node = node.children?.get(part);
    }
    return node;
  }

  /**
   * A symlink's target is resolved here, as the kernel would, against what exists so far: it may
   * not leave the context nor pass through another symlink, and what it passes through is marked
   * so that it can never become a symlink later.
   */
  private checkSymlink(rel: string, chain: PathNode[], target: string): void {
    if (target.includes('\0')) throw refuse(rel, 'NUL in symlink target');
    if (target.startsWith('/')) throw refuse(rel, `symlink to the absolute path ${quote(target)}`);
    if (Buffer.byteLength(target) > MAX_PATH_BYTES) throw refuse(rel, `symlink target longer than ${MAX_PATH_BYTES} bytes`);
    const stack = [...chain];
    const names = rel.split('/').slice(0, -1);
    const steps = target.split('/').filter((p) => p !== '' && p !== '.');
    for (const [i, step] of steps.entries()) {
      if (step === '..') {
        if (stack.length === 1) throw refuse(rel, `symlink target ${quote(target)} leaves the context`);
        stack.pop();
        names.pop();
        continue;
      }
      const node = this.child(stack[stack.length - 1] ?? this.root, step, rel);
      names.push(step);
      if (i < steps.length - 1 && node.kind === 'symlink') {
        throw refuse(rel, `symlink target ${quote(target)} resolves through the symlink ${quote(names.join('/'))}`);
      }
      node.traversed = true;
      stack.push(node);
    }
  }
}

function actionFor(type: Exclude<Header['type'], MetaType>, path: string): Action {
  switch (type) {
    case 'File':
    case 'OldFile':
    case 'ContiguousFile':
      return 'file';
    case 'Directory':
      return 'dir';
    case 'SymbolicLink':
      return 'symlink';
    case 'Link':
      return 'link';
    case 'CharacterDevice':
    case 'BlockDevice':
    case 'FIFO':
    case 'GNUDumpDir':
    case 'SolarisACL':
    case 'Inode':
    case 'ContinuationFile':
    case 'SparseFile':
    case 'TapeVolumeHeader':
    case 'Unsupported':
      throw refuse(path, `entry type ${type} is not allowed (only files, directories and links)`);
  }
}

/**
 * The components of a normalised relative path, or a refusal for absolute, "..", NUL,
 * drive-letter, overlong or overdeep paths. `entry` names the entry in a refusal.
 */
function relativeParts(path: string, entry: string): string[] {
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) throw refuse(entry, `path longer than ${MAX_PATH_BYTES} bytes`);
  if (path.includes('\0')) throw refuse(entry, 'NUL in path');
  if (path.startsWith('/') || /^[A-Za-z]:[\\/]/.test(path)) throw refuse(entry, 'absolute path');
  const raw = path.split(/[\\/]/);
  if (raw.includes('..')) throw refuse(entry, '".." in path');
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length > MAX_PATH_DEPTH) throw refuse(entry, `path deeper than ${MAX_PATH_DEPTH} levels`);
  if (parts.some((p) => Buffer.byteLength(p) > MAX_NAME_BYTES)) throw refuse(entry, `a path component longer than ${MAX_NAME_BYTES} bytes`);
  return parts;
}

async function writeAll(fh: FileHandle, buffers: Buffer[]): Promise<void> {
  let left = buffers.filter((b) => b.length > 0);
  while (left.length > 0) {
    let { bytesWritten } = await fh.writev(left);
    if (bytesWritten === 0) throw new Error('no progress writing a file');
    let i = 0;
    for (; i < left.length && bytesWritten >= (left[i]?.length ?? 0); i++) bytesWritten -= left[i]?.length ?? 0;
    left = left.slice(i);
    if (bytesWritten > 0 && left[0] !== undefined) left[0] = left[0].subarray(bytesWritten);
  }
}

function cString(body: Buffer): string {
  const end = body.indexOf(0);
  return body.toString('utf8', 0, end < 0 ? body.length : end);
}

/** The fields of a pax header we use; records are "LEN key=value\n", LEN counting the whole record. */
function parsePax(body: Buffer): { path?: string; linkpath?: string; size?: number } {
  const out: { path?: string; linkpath?: string; size?: number } = {};
  for (let at = 0; at < body.length && body[at] !== 0; ) {
    const space = body.indexOf(0x20, at);
    const len = space < 0 ? NaN : Number(body.toString('latin1', at, space));
    if (!Number.isSafeInteger(len) || len <= space - at + 1 || at + len > body.length || body[at + len - 1] !== 0x0a) throw unreadable('malformed pax header');
    const record = body.toString('utf8', space + 1, at + len - 1);
    at += len;
    const eq = record.indexOf('=');
    if (eq < 0) throw unreadable('malformed pax header');
    const key = record.slice(0, eq);
    const value = record.slice(eq + 1);
    if (key === 'path') out.path = value;
    else if (key === 'linkpath') out.linkpath = value;
    else if (key === 'size') {
      if (!/^\d{1,15}$/.test(value)) throw unreadable('bad size in pax header');
      out.size = Number(value);
    }
  }
  return out;
}
