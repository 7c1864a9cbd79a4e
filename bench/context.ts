/**
 * Upload + download + extract of a 200 MB context through the fleet's code, against `tar` and a
 * raw S3 put/get of the same bytes, in one run. MB/s of context (unpacked) per second.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { packContext } from '../client/index.ts';
import { startS3Server } from '../deploy/local/s3-server.ts';
import { S3Store, contextKey } from '../adapters/s3-store.ts';
import { downloadContext } from '../worker/context-download.ts';
import { extractContext } from '../worker/context-extract.ts';
import { printTable } from './table.ts';

const MB = Number(process.env.BENCH_CONTEXT_MB ?? 200);
const work = await mkdtemp(join(tmpdir(), 'fleet-bench-ctx-'));
const s3Server = await startS3Server(join(work, 's3'));
const s3 = new S3Store(s3Server.options);
try {
  const src = join(work, 'src');
  await mkdir(src);
  // Half random (incompressible), half text-like: roughly what an app context holds.
  for (let i = 0; i < MB; i++) {
    const body = i % 2 === 0 ? randomBytes(1024 ** 2) : Buffer.from('const answer = 42; // some source code\n'.repeat(26_000)).subarray(0, 1024 ** 2);
    await writeFile(join(src, `file-${i}.bin`), body);
  }
  await writeFile(join(src, 'Dockerfile'), 'FROM scratch\n');

  const t0 = performance.now();
  const packed = await packContext(src, 'Dockerfile', join(work, 'ctx.tgz'));
  await s3.putFileOnce(contextKey(packed.digest), packed.file);
  const t1 = performance.now();
  await downloadContext(s3, { key: contextKey(packed.digest), digest: packed.digest }, join(work, 'down.tgz'), 8 * 1024 ** 3, AbortSignal.timeout(600_000));
  await extractContext(join(work, 'down.tgz'), join(work, 'out'));
  const t2 = performance.now();

  const r0 = performance.now();
  await execa('tar', ['-czf', join(work, 'raw.tgz'), '-C', src, '.']);
  await s3.putBytes('raw/ctx.tgz', await readFile(join(work, 'raw.tgz')), 'application/gzip');
  const r1 = performance.now();
  const body = await s3.get('raw/ctx.tgz');
  if (body === null) throw new Error('raw object missing');
  const { pipeline } = await import('node:stream/promises');
  const { createWriteStream } = await import('node:fs');
  await pipeline(body, createWriteStream(join(work, 'raw-down.tgz')));
  await mkdir(join(work, 'raw-out'));
  await execa('tar', ['-xzf', join(work, 'raw-down.tgz'), '-C', join(work, 'raw-out')]);
  const r2 = performance.now();

  const rate = (ms: number): string => `${(MB / (ms / 1000)).toFixed(0)} MB/s`;
  printTable([
    ['context size (unpacked)', `${MB} MB (${(packed.bytes / 1024 ** 2).toFixed(0)} MB packed)`],
    ['fleet: pack + upload', `${((t1 - t0) / 1000).toFixed(2)} s (${rate(t1 - t0)})`],
    ['raw: tar czf + S3 put', `${((r1 - r0) / 1000).toFixed(2)} s (${rate(r1 - r0)})`],
    ['fleet: download + verify + safe extract', `${((t2 - t1) / 1000).toFixed(2)} s (${rate(t2 - t1)})`],
    ['raw: S3 get + tar xzf', `${((r2 - r1) / 1000).toFixed(2)} s (${rate(r2 - r1)})`],
    ['ratio fleet/raw, whole round trip', `${((t2 - t0) / (r2 - r0)).toFixed(2)}x`],
  ]);
} finally {
  s3.close();
  await s3Server.stop();
  await rm(work, { recursive: true, force: true });
}
