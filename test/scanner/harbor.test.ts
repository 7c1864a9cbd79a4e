import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DB_UPDATED_PROPERTY, HarborBackend, REPORT_MIME, normaliseHarbor } from '../../scanner/harbor.ts';

describe('Harbor report normalization', () => {
  it('dedupes on id + package + installed, sorts, maps severities and fix state', () => {
    const findings = normaliseHarbor(
      {
        vulnerabilities: [
          { id: 'CVE-2', package: 'b', version: '1', fix_version: '', severity: 'HIGH' },
          { id: 'CVE-1', package: 'a', version: '1', fix_version: '2', severity: 'Critical' },
          { id: 'CVE-1', package: 'a', version: '1', fix_version: '2', severity: 'Critical' },
          { id: 'CVE-3', package: 'c', version: '1', severity: 'None' },
        ],
      },
      'harbor:x',
    );
    expect(findings).toEqual([
      { id: 'CVE-1', severity: 'Critical', package: 'a', installed: '1', fixed: '2', fixState: 'fixed', source: 'harbor:x' },
      { id: 'CVE-2', severity: 'High', package: 'b', installed: '1', fixState: 'not-fixed', source: 'harbor:x' },
      { id: 'CVE-3', severity: 'Unknown', package: 'c', installed: '1', fixState: 'not-fixed', source: 'harbor:x' },
    ]);
  });
});

/** Adapters that fail in the ways the client must fail closed on. */
describe('Harbor client fails closed', () => {
  let server: Server;
  let url: string;
  let metadata: Record<string, unknown> = {};
  let scanStatus = 202;
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/api/v1/metadata') return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(metadata));
      if (req.url === '/api/v1/scan') return res.writeHead(scanStatus, { 'content-type': 'application/json' }).end(JSON.stringify({ id: 's1' }));
      res.writeHead(500).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => void server.close());
  const image = { registry: 'r:5000', insecure: true, repository: 'q/a', digest: `sha256:${'a'.repeat(64)}` };
  const meta = (props: Record<string, string>, produces = [REPORT_MIME]) => ({
    scanner: { name: 'S', version: '1' },
    capabilities: [{ consumes_mime_types: ['application/vnd.oci.image.manifest.v1+json'], produces_mime_types: produces }],
    properties: props,
  });

  it('refuses an adapter without a DB time, with a stale DB, or without v1.1 reports', async () => {
    const backend = new HarborBackend({ url });
    metadata = meta({});
    await expect(backend.scan(image, AbortSignal.timeout(5_000))).rejects.toMatchObject({ code: 'E_SCAN_UNAVAILABLE', message: expect.stringMatching(/does not say when/) });
    metadata = meta({ [DB_UPDATED_PROPERTY]: new Date(Date.now() - 200 * 3600_000).toISOString() });
    await expect(backend.scan(image, AbortSignal.timeout(5_000))).rejects.toMatchObject({ code: 'E_SCAN_UNAVAILABLE', message: expect.stringMatching(/200 h old/) });
    metadata = meta({ [DB_UPDATED_PROPERTY]: new Date().toISOString() }, ['application/vnd.security.vulnerability.report; version=1.0']);
    await expect(backend.scan(image, AbortSignal.timeout(5_000))).rejects.toMatchObject({ code: 'E_SCAN_UNAVAILABLE', message: expect.stringMatching(/does not produce/) });
  });

  it('a refused scan or a failing report endpoint is E_SCAN_UNAVAILABLE, never an empty report', async () => {
    const backend = new HarborBackend({ url });
    metadata = meta({ [DB_UPDATED_PROPERTY]: new Date().toISOString() });
    scanStatus = 503;
    await expect(backend.scan(image, AbortSignal.timeout(5_000))).rejects.toMatchObject({ code: 'E_SCAN_UNAVAILABLE', message: expect.stringMatching(/refused the scan/) });
    scanStatus = 202;
    await expect(backend.scan(image, AbortSignal.timeout(5_000))).rejects.toMatchObject({ code: 'E_SCAN_UNAVAILABLE', message: expect.stringMatching(/HTTP 500/) });
  });

  it('an unreachable adapter is E_SCAN_UNAVAILABLE', async () => {
    await expect(new HarborBackend({ url: 'http://127.0.0.1:1' }).scan(image, AbortSignal.timeout(5_000))).rejects.toMatchObject({ code: 'E_SCAN_UNAVAILABLE' });
  });
});
