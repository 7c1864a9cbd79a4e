import { mkdir, mkdtemp, readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tar from 'tar';
import { beforeEach, describe, expect, it } from 'vitest';
import { packContext } from '../../cli/context-pack.ts';
import { ErrorCode, isFleetError } from '../../protocol/index.ts';
import { extractContext } from '../../worker/build-context.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleet-ctx-test-'));
});

async function refusal(file: string): Promise<string> {
  const out = join(dir, 'out');
  const err = await extractContext(file, out).then(
    () => null,
    (e: unknown) => e,
  );
  expect(isFleetError(err, ErrorCode.E_CONTEXT_INVALID)).toBe(true);
  // Nothing was written: the listing pass refuses before extraction starts.
  expect(await readdir(out).catch(() => [])).toEqual([]);
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

describe('context extraction refuses', () => {
  it('".." paths', async () => {
    expect(await refusal(await rawTar('dotdot.tgz', [{ path: '../evil', type: 'File', body: 'x' }]))).toContain('leaves the context');
  });
  it('absolute paths', async () => {
    expect(await refusal(await rawTar('abs.tgz', [{ path: '/etc/evil', type: 'File', body: 'x' }]))).toContain('absolute');
  });
  it('symlinks that leave the root', async () => {
    expect(await refusal(await rawTar('sym.tgz', [{ path: 'a/link', type: 'SymbolicLink', linkpath: '../../etc' }]))).toContain('symlink');
  });
  it('hard links, devices and FIFOs', async () => {
    expect(await refusal(await rawTar('hard.tgz', [{ path: 'h', type: 'Link', linkpath: 'x' }]))).toContain('Link');
    expect(await refusal(await rawTar('dev.tgz', [{ path: 'd', type: 'CharacterDevice' }]))).toContain('CharacterDevice');
    expect(await refusal(await rawTar('fifo.tgz', [{ path: 'p', type: 'FIFO' }]))).toContain('FIFO');
  });
  it('setuid bits', async () => {
    expect(await refusal(await rawTar('suid.tgz', [{ path: 's', type: 'File', mode: 0o4755, body: 'x' }]))).toContain('setuid');
  });
  it('bytes that are not a tar.gz', async () => {
    const file = join(dir, 'junk.tgz');
    await writeFile(file, 'definitely not gzip');
    expect(await refusal(file)).toContain('not a readable tar.gz');
  });
});
