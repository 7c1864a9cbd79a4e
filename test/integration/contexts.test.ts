import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ListMultipartUploadsCommand, S3Client } from '@aws-sdk/client-s3';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetClient } from '../../client/index.ts';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import { ErrorCode, isFleetError } from '../../protocol/index.ts';
import { S3Store, contextKey } from '../../adapters/s3-store.ts';
import { eventually } from '../helpers/eventually.ts';
import { fixture, startTestFleet, adminFetch } from '../helpers/fleet.ts';

describe('build contexts in S3', () => {
  let fleet: LocalFleet;
  let work: string;
  beforeAll(async () => {
    fleet = await startTestFleet();
    work = await mkdtemp(join(tmpdir(), 'fleet-ctx-it-'));
  });
  afterAll(async () => {
    await fleet?.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('uploads an identical context once, under its sha256', async () => {
    const first = await fleet.client.uploadContext(fixture('two-stage'));
    const second = await fleet.client.uploadContext(fixture('two-stage'));
    expect(second).toEqual({ ...first, uploaded: false });
    expect(await fleet.client.s3.head(contextKey(first.digest))).toEqual({ size: first.bytes });
  });

  it('uploads a large context multipart and builds from it', async () => {
    const dir = join(work, 'large');
    await mkdir(dir);
    await writeFile(join(dir, 'blob.bin'), randomBytes(40 * 1024 ** 2)); // incompressible: > 16 MiB packed
    await writeFile(join(dir, 'Dockerfile'), 'ARG FLEET_REGISTRY\nFROM ${FLEET_REGISTRY}/official/base:1\nCOPY blob.bin /blob.bin\nRUN wc -c < /blob.bin\nUSER 1000\n');
    const up = await fleet.client.uploadContext(dir);
    expect(up.uploaded).toBe(true);
    expect(up.bytes).toBeGreaterThan(16 * 1024 ** 2);
    await fleet.client.submit({ id: 'large-ctx', context: { digest: up.digest }, image: { repository: 'app/large', tags: ['1'] } });
    const lines: string[] = [];
    const final = await fleet.client.follow('large-ctx', { line: (l) => lines.push(l.text) });
    expect(final.state.phase).toBe('pushed');
    expect(lines).toContain(String(40 * 1024 ** 2));
  });

  it('aborts a failed multipart upload and leaves no orphan parts', async () => {
    const file = join(work, 'abort.bin');
    await writeFile(file, randomBytes(64 * 1024 ** 2));
    const store = new S3Store(fleet.s3.options);
    const o = fleet.s3.options;
    const raw = new S3Client({ endpoint: o.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { ...o.credentials } });
    const inProgress = async () => (await raw.send(new ListMultipartUploadsCommand({ Bucket: o.bucket }))).Uploads?.length ?? 0;
    const ac = new AbortController();
    const upload = store.putFileOnce('contexts/aborted-upload', file, ac.signal).catch((e: unknown) => e);
    // Fail the upload only once a multipart upload really exists on the server.
    await eventually(async () => (await inProgress()) > 0, 30_000, 'a multipart upload in progress', { intervalMs: 10 });
    ac.abort();
    expect(await upload).toBeInstanceOf(Error);
    await eventually(async () => (await inProgress()) === 0, 10_000, 'the aborted multipart upload gone');
    raw.destroy();
    store.close();
    expect(await fleet.client.s3.head('contexts/aborted-upload')).toBeNull();
  });

  it('refuses a context over the size limit before uploading, naming the limit', async () => {
    const small = await FleetClient.connect(fleet.nats.url, fleet.client.credentials, fleet.s3.options, { maxContextBytes: 100 });
    try {
      const err = await small.uploadContext(fixture('two-stage')).catch((e: unknown) => e);
      expect(isFleetError(err, ErrorCode.E_INVALID_REQUEST)).toBe(true);
      expect((err as Error).message).toContain('over the limit of 100');
    } finally {
      await small.close();
    }
  });

  it('builds from a pre-uploaded s3:// context given over HTTP, and refuses one outside the bucket', async () => {
    const packedDir = join(work, 'pre');
    await mkdir(packedDir);
    const file = join(packedDir, 'ctx.tgz');
    await tar.c({ cwd: fixture('two-stage'), gzip: true, portable: true, file }, ['Dockerfile', 'src/greeting.txt']);
    const bytes = await readFile(file);
    const { createHash } = await import('node:crypto');
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    await fleet.client.s3.putBytes('uploads/release-7/ctx.tgz', bytes, 'application/gzip');
    const post = (body: unknown) =>
      adminFetch(fleet, `${fleet.coordinator.httpUrl}/v1/builds`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const res = await post({ id: 'pre-uploaded', context: { digest, url: `s3://${fleet.s3.options.bucket}/uploads/release-7/ctx.tgz` }, image: { repository: 'app/pre', tags: ['1'] } });
    expect(res.status).toBe(202);
    expect((await fleet.client.follow('pre-uploaded', {})).state.phase).toBe('pushed');

    const outside = await post({ id: 'elsewhere', context: { digest, url: 's3://someone-else/x.tgz' }, image: { repository: 'app/pre', tags: ['1'] } });
    expect(outside.status).toBe(400);
    expect(await outside.json()).toMatchObject({ error: { details: { issues: [{ path: 'context.url' }] } } });
  });

  it('fails a build whose context bytes do not match its digest, or that breaks an extraction rule, and serves the next job', async () => {
    const good = await readFile(join(work, 'pre', 'ctx.tgz'));
    await fleet.client.s3.putBytes('uploads/tampered.tgz', good, 'application/gzip');
    const wrongDigest = `sha256:${'e'.repeat(64)}`;
    await fleet.client.submit({ id: 'tampered', context: { digest: wrongDigest, url: `s3://${fleet.s3.options.bucket}/uploads/tampered.tgz` }, image: { repository: 'app/t', tags: ['1'] } });
    const tampered = await fleet.client.follow('tampered', {});
    expect(tampered.state).toMatchObject({ phase: 'failed', error: { code: 'E_CONTEXT_INVALID' } });

    const header = Buffer.alloc(512);
    new tar.Header({ path: '../escape', type: 'File', size: 1, mode: 0o644, mtime: new Date(0) }).encode(header);
    const evil = gzipSync(Buffer.concat([header, Buffer.from('x'), Buffer.alloc(511), Buffer.alloc(1024)]));
    const { createHash } = await import('node:crypto');
    const evilDigest = `sha256:${createHash('sha256').update(evil).digest('hex')}`;
    await fleet.client.s3.putBytes(contextKey(evilDigest), evil, 'application/gzip');
    await fleet.client.submit({ id: 'escaping', context: { digest: evilDigest }, image: { repository: 'app/t', tags: ['2'] } });
    const escaping = await fleet.client.follow('escaping', {});
    expect(escaping.state).toMatchObject({ phase: 'failed', error: { code: 'E_CONTEXT_INVALID' } });
    if (escaping.state.phase === 'failed') expect(escaping.state.error.message).toContain('"../escape"');

    const { digest } = await fleet.client.uploadContext(fixture('two-stage'));
    await fleet.client.submit({ id: 'after-bad-contexts', context: { digest }, image: { repository: 'app/t', tags: ['3'] } });
    expect((await fleet.client.follow('after-bad-contexts', {})).state.phase).toBe('pushed');
  });
});
