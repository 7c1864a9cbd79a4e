import { mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tar from 'tar';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { packContext } from '../../client/index.ts';
import { ErrorCode, isFleetError } from '../../protocol/index.ts';
import { extractContext, type ExtractLimits } from '../../worker/context-extract.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleet-ctx-test-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function refusal(file: string, nothingWritten = true, limits?: ExtractLimits): Promise<string> {
  const out = join(dir, `out-${Math.random().toString(36).slice(2)}`);
  const err = await extractContext(file, out, limits).then(
    () => null,
    (e: unknown) => e,
  );
  expect(isFleetError(err, ErrorCode.E_CONTEXT_INVALID)).toBe(true);
  // A single bad entry is refused before anything is written.
  if (nothingWritten) expect(await readdir(out).catch(() => [])).toEqual([]);
  return isFleetError(err) ? err.message : '';
}

/** Writes a tarball whose entries are given raw (node-tar's Header), for archives a packer would never make. */
async function rawTar(name: string, entries: Array<{ path: string; type: string; linkpath?: string; mode?: number; body?: string }>): Promise<string> {
  const { Header } = tar;
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const body = Buffer.from(e.body ?? '');
    const h = new Header({ path: e.path, type: e.type as never, linkpath: e.linkpath ?? '', mode: e.mode ?? 0o644, size: e.type === 'File' ? body.length : 0, mtime: new Date(0) });
    const block = Buffer.alloc(512);
    h.encode(block);
    blocks.push(block);
    if (e.type === 'File') blocks.push(Buffer.concat([body, Buffer.alloc((512 - (body.length % 512)) % 512)]));
  }
  blocks.push(Buffer.alloc(1024));
  const { gzipSync } = await import('node:zlib');
  const file = join(dir, name);
  await writeFile(file, gzipSync(Buffer.concat(blocks)));
  return file;
}

describe('context packing', () => {
  it('gives the same digest for the same files, whatever their mtimes', async () => {
    const src = join(dir, 'src');
    await mkdir(src);
    await writeFile(join(src, 'Dockerfile'), 'FROM scratch\n');
    await writeFile(join(src, 'a.txt'), 'a');
    const one = await packContext(src, 'Dockerfile', join(dir, '1.tgz'));
    await writeFile(join(src, 'a.txt'), 'a');
    const two = await packContext(src, 'Dockerfile', join(dir, '2.tgz'));
    expect(two.digest).toBe(one.digest);
    await writeFile(join(src, 'a.txt'), 'b');
    expect((await packContext(src, 'Dockerfile', join(dir, '3.tgz'))).digest).not.toBe(one.digest);
  });

  it('round-trips through extraction', async () => {
    const src = join(dir, 'src');
    await mkdir(join(src, 'sub'), { recursive: true });
    await writeFile(join(src, 'Dockerfile'), 'FROM scratch\n');
    await writeFile(join(src, 'sub', 'f'), 'content');
    await symlink('f', join(src, 'sub', 'link'));
    const packed = await packContext(src, 'Dockerfile', join(dir, 'c.tgz'));
    await extractContext(packed.file, join(dir, 'out'));
    expect(await readFile(join(dir, 'out', 'sub', 'link'), 'utf8')).toBe('content');
  });
});

describe('context extraction refuses, naming the entry and the rule', () => {
  it('".." paths', async () => {
    expect(await refusal(await rawTar('dotdot.tgz', [{ path: '../evil', type: 'File', body: 'x' }]))).toContain('"../evil" refused: ".." in path');
    expect(await refusal(await rawTar('dotdot2.tgz', [{ path: 'a/../../evil', type: 'File', body: 'x' }]))).toContain('".." in path');
  });
  it('absolute paths, "////" prefixes included', async () => {
    expect(await refusal(await rawTar('abs.tgz', [{ path: '/etc/evil', type: 'File', body: 'x' }]))).toContain('absolute path');
    expect(await refusal(await rawTar('slashes.tgz', [{ path: '////etc/evil', type: 'File', body: 'x' }]))).toContain('absolute path');
  });
  it('symlinks whose target leaves the root or is absolute', async () => {
    expect(await refusal(await rawTar('sym.tgz', [{ path: 'a/link', type: 'SymbolicLink', linkpath: '../../etc' }]))).toContain('leaves the context');
    expect(await refusal(await rawTar('symabs.tgz', [{ path: 'link', type: 'SymbolicLink', linkpath: '/etc/passwd' }]))).toContain('absolute path');
  });
  it('a file written through a symlink (link-then-file ordering)', async () => {
    const file = await rawTar('through.tgz', [
      { path: 'sub', type: 'Directory' },
      { path: 'a', type: 'SymbolicLink', linkpath: 'sub' },
      { path: 'a/x', type: 'File', body: 'x' },
    ]);
    expect(await refusal(file, false)).toContain('written through the symlink "a"');
  });
  it('a path reused: a directory replaced by a symlink, a file given twice', async () => {
    const dirThenLink = await rawTar('reuse.tgz', [
      { path: 'd', type: 'Directory' },
      { path: 'd', type: 'SymbolicLink', linkpath: '.' },
    ]);
    expect(await refusal(dirThenLink, false)).toContain('path used twice');
    const twice = await rawTar('twice.tgz', [
      { path: 'f', type: 'File', body: 'one' },
      { path: 'f', type: 'File', body: 'two' },
    ]);
    expect(await refusal(twice, false)).toContain('path used twice');
  });
  it('a symlink chain that escapes only when resolved through another symlink', async () => {
    const file = await rawTar('chain.tgz', [
      { path: 'deep/er', type: 'Directory' },
      { path: 'y', type: 'SymbolicLink', linkpath: 'deep/er/../..' },
      { path: 'deep/er', type: 'SymbolicLink', linkpath: '../..' },
    ]);
    expect(await refusal(file, false)).toMatch(/refused/);
  });
  it('hard links except to a file earlier in the context, devices and FIFOs', async () => {
    expect(await refusal(await rawTar('hard.tgz', [{ path: 'h', type: 'Link', linkpath: '../../etc/shadow' }]))).toContain('".." in path');
    expect(await refusal(await rawTar('hard2.tgz', [{ path: 'h', type: 'Link', linkpath: 'missing' }]))).toContain('not a file earlier');
    expect(await refusal(await rawTar('dev.tgz', [{ path: 'd', type: 'CharacterDevice' }]))).toContain('entry type CharacterDevice');
    expect(await refusal(await rawTar('fifo.tgz', [{ path: 'p', type: 'FIFO' }]))).toContain('entry type FIFO');
  });
  it('setuid and setgid bits', async () => {
    expect(await refusal(await rawTar('suid.tgz', [{ path: 's', type: 'File', mode: 0o4755, body: 'x' }]))).toContain('setuid');
    expect(await refusal(await rawTar('sgid.tgz', [{ path: 'g', type: 'File', mode: 0o2755, body: 'x' }]))).toContain('setgid');
  });
  it('more entries than the cap', async () => {
    const many = await rawTar('many.tgz', Array.from({ length: 5 }, (_, i) => ({ path: `f${i}`, type: 'File', body: 'x' })));
    const limits: ExtractLimits = { maxEntries: 3, maxBytes: 1 << 20, maxRatio: 100, ratioFloorBytes: 1 << 20 };
    expect(await refusal(many, false, limits)).toContain('more than 3 entries');
  });
  it('more unpacked bytes than the cap', async () => {
    const big = await rawTar('big.tgz', [{ path: 'big', type: 'File', body: 'y'.repeat(4096) }]);
    const limits: ExtractLimits = { maxEntries: 10, maxBytes: 1000, maxRatio: 1000, ratioFloorBytes: 1000 };
    expect(await refusal(big, false, limits)).toContain('more than 1000 bytes');
  });
  it('a 2 GiB zero file compressed to a few MB, from its header, before writing it', async () => {
    const file = join(dir, 'bomb.tgz');
    await writeBomb(file, 2 * 1024 ** 3);
    expect((await stat(file)).size).toBeLessThan(4 * 1024 ** 2);
    const started = Date.now();
    expect(await refusal(file)).toContain('compression ratio above');
    expect(Date.now() - started).toBeLessThan(2_000);
  });
  it('bytes that are not a tar.gz, and a truncated one', async () => {
    const junk = join(dir, 'junk.tgz');
    await writeFile(junk, 'definitely not gzip');
    expect(await refusal(junk)).toContain('not a readable tar.gz');
    const good = await rawTar('good.tgz', [{ path: 'f', type: 'File', body: 'z'.repeat(100_000) }]);
    const bytes = await readFile(good);
    const cut = join(dir, 'cut.tgz');
    await writeFile(cut, bytes.subarray(0, Math.floor(bytes.length / 2)));
    expect(await refusal(cut, false)).toMatch(/not a readable tar.gz|refused/);
  });
  it('never writes outside the scratch dir, whatever the archive', async () => {
    const outside = join(dir, 'outside');
    await mkdir(outside);
    for (const entries of [
      [{ path: '../outside/x', type: 'File', body: 'x' }],
      [{ path: 'l', type: 'SymbolicLink', linkpath: '../outside' }, { path: 'l/x', type: 'File', body: 'x' }],
    ]) {
      await refusal(await rawTar(`esc-${Math.random()}.tgz`, entries), false);
    }
    expect(await readdir(outside)).toEqual([]);
  });
});

/** Streams a tar.gz holding one zero-filled file of `size` bytes (the classic bomb), without holding it in memory. */
async function writeBomb(file: string, size: number): Promise<void> {
  const { Header } = tar;
  const header = Buffer.alloc(512);
  new Header({ path: 'zeros', type: 'File', mode: 0o644, size, mtime: new Date(0) }).encode(header);
  const zeros = Buffer.alloc(1 << 20);
  async function* body() {
    yield header;
    for (let left = size; left > 0; left -= zeros.length) yield left >= zeros.length ? zeros : zeros.subarray(0, left);
    yield Buffer.alloc(1024);
  }
  const { createGzip } = await import('node:zlib');
  const { createWriteStream } = await import('node:fs');
  const { pipeline } = await import('node:stream/promises');
  await pipeline(body, createGzip({ level: 9 }), createWriteStream(file));
}
