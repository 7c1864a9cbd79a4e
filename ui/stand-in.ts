import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serveUi } from '../coordinator/ui-assets.ts';

/** What a stand-in serves: its address, whether every line has been sent, and its stop. */
export interface StandIn {
  url: string;
  done(): boolean;
  close(): Promise<void>;
}

/**
 * The console and just enough of the API for one running build, `flood`, whose log prints `total`
 * lines at exactly `perSecond`: the page's own cost under a flood, measured apart from the fleet's
 * (test/ui/flood.test.ts, bench/ui.ts). Lines go out in 50 ms slices, as a worker's batches
 * arrive, paced by the clock: a late timer on a busy machine is made up by the next slice, so the
 * rate holds. The console is served from `dist` (ui/build.ts's output).
 */
export async function standInApi(total: number, perSecond: number, dist?: string): Promise<StandIn> {
  const at = new Date().toISOString();
  const build = { id: 'flood', tenant: 'bench', createdAt: at, updatedAt: at, request: { pool: 'default', kind: 'custom', image: { repository: 'bench/flood', tags: ['1'] } }, state: { phase: 'running', attempt: 1, workerId: 'w', startedAt: at } };
  let sent = 0;
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    void serveUi(req.method ?? 'GET', path, res, dist).then((served) => {
      if (served) return;
      if (path === '/v1/builds/flood') {
        res.writeHead(200, { 'content-type': 'application/json' });
        return void res.end(JSON.stringify({ build }));
      }
      if (path !== '/v1/builds/flood/logs') return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const started = Date.now();
      const slice = (): void => {
        const due = Math.min(total, Math.floor(((Date.now() - started) / 1000) * perSecond) + perSecond / 20);
        let chunk = '';
        for (; sent < due; sent++) chunk += `event: log\ndata: ${JSON.stringify({ attempt: 1, n: sent + 1, stream: 'stdout', at, text: `flood ${sent + 1} lorem ipsum dolor sit amet` })}\n\n`;
        res.write(chunk);
        if (sent < total) setTimeout(slice, 50);
        else res.end(`event: end\ndata: ${JSON.stringify({ ...build, state: { phase: 'cancelled', attempt: 1, finishedAt: at } })}\n\n`);
      };
      slice();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    done: () => sent >= total,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
