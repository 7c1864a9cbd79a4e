import { mkdir, rename, rm, writeFile, readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, normalize } from 'node:path';
import { execa } from 'execa';
import { cacheBin } from '../../adapters/environment.ts';

const FIXTURE_DB = join(cacheBin(), 'grype-fixture-db');

export interface DbMirror {
  server: Server;
  url: string;
  /** every request as `METHOD /path` */
  requests: string[];
  /** builds a DB of `advisories` stamped `built` (grype-fixture-db -archive) and swaps it in whole, as a mirror sync would */
  publish(name: string, advisories: unknown[], built: Date): Promise<void>;
}

/**
 * A mirror as grype's DB distribution serves one, over real HTTP on loopback: `/v6/latest.json`
 * naming an archive beside it (the scanner's dbUpdate.url is `url`). Files under `dir`.
 */
export async function startDbMirror(dir: string): Promise<DbMirror> {
  const requests: string[] = [];
  const served = join(dir, 'served');
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    requests.push(`${req.method} ${path}`);
    readFile(join(served, path)).then(
      (body) => {
        res.writeHead(200, { 'content-type': path.endsWith('.json') ? 'application/json' : 'application/gzip', 'content-length': body.length });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    async publish(name, advisories, built) {
      const adv = join(dir, `advisories-${name}`);
      await mkdir(adv, { recursive: true });
      for (const [i, a] of advisories.entries()) await writeFile(join(adv, `${i}.json`), JSON.stringify(a));
      const out = join(dir, `mirror-${name}`);
      // grype-fixture-db takes whole seconds
      await execa(FIXTURE_DB, ['-in', adv, '-out', join(out, 'v6'), '-archive', '-built', built.toISOString().replace(/\.\d+Z$/, 'Z')]);
      await rm(served, { recursive: true, force: true });
      await rename(out, served);
    },
  };
}
