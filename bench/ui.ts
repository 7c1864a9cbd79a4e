/**
 * `npm run bench:ui`: the web console's numbers, printed, not asserted (they belong to the machine).
 * - time to first log line on opening a running build (navigation start → the first line drawn);
 * - main-thread long tasks (PerformanceObserver 'longtask') and late frames while following a build
 *   that prints about 20,000 lines/s;
 *   Twice: from a real fleet (as fast as its log pipeline delivers on this machine), and from a
 *   stand-in API that serves the console and streams exactly 20,000 lines/s, so the page's own
 *   cost is measured apart from the fleet's;
 * - page weight: the built assets, raw and gzipped.
 * Debian's chromium through playwright-core, against a local fleet.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { chromium, type Page } from 'playwright-core';
import { startLocalFleet } from '../deploy/local/fleet.ts';
import { standInApi } from '../ui/stand-in.ts';
import { createLogger } from '../adapters/logger.ts';
import { buildUi, DEFAULT_OUT } from '../ui/build.ts';
import { isTerminal } from '../protocol/index.ts';
import { printTable } from './table.ts';

/** 20 bursts of 20,000 lines, one a second: about 20,000 lines/s for 20 s. */
const BURST = 20_000;
const SECONDS = Number(process.env.BENCH_UI_SECONDS ?? 20);

async function pageWeight(): Promise<{ raw: number; gzip: number }> {
  let raw = 0;
  let gzip = 0;
  for (const dir of ['', 'assets']) {
    for (const f of await readdir(join(DEFAULT_OUT, dir), { withFileTypes: true })) {
      if (!f.isFile()) continue;
      const body = await readFile(join(DEFAULT_OUT, dir, f.name));
      raw += body.length;
      gzip += gzipSync(body, { level: 9 }).length;
    }
  }
  return { raw, gzip };
}

/** Polls an expression in the page (waitForFunction would eval a string, which the console's CSP forbids). */
async function until(page: Page, expression: string, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await page.evaluate(expression))) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${expression}`);
    await page.waitForTimeout(20);
  }
}

interface FloodStats {
  longTasks: number;
  longTaskMs: number;
  frames: number;
  lateFrames: number;
  worstFrameMs: number;
  first: number;
  last: number;
  lines: number;
  rows: number;
}

/** Opens `url` (a build page), then counts long tasks and frames until the log has ended. */
async function followFlood(page: Page, url: string, ended: () => Promise<boolean>): Promise<FloodStats> {
  await page.goto(url);
  await page.evaluate(`(() => {
    const s = (window.__bench = { longTasks: 0, longTaskMs: 0, frames: 0, lateFrames: 0, worstFrameMs: 0, first: 0, last: 0 });
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) { s.longTasks++; s.longTaskMs += e.duration; }
    }).observe({ type: 'longtask', buffered: false });
    let prev = performance.now();
    const frame = (t) => {
      const count = document.querySelector('[data-testid="line-count"]')?.textContent ?? '';
      if (!count.startsWith('0 ')) {
        if (s.first === 0) s.first = t;
        s.frames++;
        const d = t - prev;
        if (d > 1000 / 60 * 1.5) s.lateFrames++;
        s.worstFrameMs = Math.max(s.worstFrameMs, d);
        s.last = t;
      }
      prev = t;
      if (!/lines$/.test(count)) requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
  })()`);
  while (!(await ended())) await page.waitForTimeout(1_000);
  await until(page, `/ lines$/.test(document.querySelector('[data-testid="line-count"]')?.textContent ?? '')`, 120_000);
  const s = JSON.parse(String(await page.evaluate('JSON.stringify(window.__bench)'))) as Omit<FloodStats, 'lines' | 'rows'>;
  const lines = Number((await page.getByTestId('line-count').textContent())?.split(' ')[0]);
  const rows = Number(await page.evaluate(`document.querySelectorAll('.log .row').length`));
  return { ...s, lines, rows };
}

function floodRows(label: string, printed: number, s: FloodStats): Array<[string, string]> {
  const secs = (s.last - s.first) / 1000;
  return [
    [`${label}: lines printed / drawn by the page`, `${printed} / ${s.lines}`],
    [`${label}: rate the page drew`, `${Math.round(s.lines / secs)} lines/s over ${secs.toFixed(1)} s`],
    [`${label}: main-thread long tasks (>50 ms)`, `${s.longTasks}, ${s.longTaskMs.toFixed(0)} ms in all`],
    [`${label}: frames / late frames (>25 ms)`, `${s.frames} / ${s.lateFrames} (worst ${s.worstFrameMs.toFixed(0)} ms)`],
    [`${label}: log row nodes in the DOM at the end`, String(s.rows)],
  ];
}

async function appDir(name: string, run: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `fleet-bench-ui-${name}-`));
  await writeFile(join(dir, 'Dockerfile'), `ARG FLEET_REGISTRY\nFROM \${FLEET_REGISTRY}/official/base:1\nRUN ${run}\nUSER 1000\n`);
  return dir;
}

await buildUi();
const weight = await pageWeight();
const total = BURST * SECONDS;
const fleet = await startLocalFleet(
  { worker: { logs: { maxLiveLines: total + 10_000, maxLiveBytes: 1024 ** 3, maxLineChars: 16_384 } } },
  createLogger('bench-ui', { level: 'warn', pretty: false }),
);
const dirs: string[] = [];
const browser = await chromium.launch({ executablePath: process.env.FLEET_CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-dev-shm-usage'] });
try {
  const base = fleet.coordinator.httpUrl;
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.addInitScript(`sessionStorage.setItem('fleet.token', ${JSON.stringify(fleet.adminToken)})`);
  const page = await context.newPage();

  // 1. A build that prints a line every 50 ms: open it once it is running and printing.
  const ticker = await appDir('ticker', 'i=1; while [ $i -le 400 ]; do echo "tick $i"; sleep 0.05; i=$((i+1)); done');
  dirs.push(ticker);
  const tickId = `bench-ui-tick-${Date.now()}`;
  await fleet.client.submit({ id: tickId, context: { digest: (await fleet.client.uploadContext(ticker)).digest }, image: { repository: 'bench/ui-tick', tags: ['1'] } });
  const printing = new AbortController();
  await new Promise<void>((resolve, reject) => {
    fleet.client.follow(tickId, { line: (l) => (l.text.startsWith('tick ') ? resolve() : undefined) }, printing.signal).then(() => resolve(), reject);
  }).finally(() => printing.abort());
  await page.goto(`${base}/ui/builds/${tickId}`);
  await until(page, `performance.getEntriesByName('fleet:first-log-line').length > 0`, 60_000);
  const firstLineMs = Number(await page.evaluate(`performance.getEntriesByName('fleet:first-log-line')[0].startTime`));

  // 2. A flood of about 20,000 lines/s, followed from its start.
  const flood = await appDir('flood', `seq 1 ${total} | awk '{ print "flood " $1 " lorem ipsum dolor sit amet"; if (NR % ${BURST} == 0) { fflush(); system("sleep 1") } }'`);
  dirs.push(flood);
  const floodId = `bench-ui-flood-${Date.now()}`;
  await fleet.client.submit({ id: floodId, context: { digest: (await fleet.client.uploadContext(flood)).digest }, image: { repository: 'bench/ui-flood', tags: ['1'] } });
  const real = await followFlood(page, `${base}/ui/builds/${floodId}`, async () => isTerminal((await fleet.client.status(floodId)).state.phase));

  // 3. The page alone: a stand-in API streaming exactly 20,000 lines/s.
  const stand = await standInApi(total, BURST);
  const synthetic = await followFlood(page, `${stand.url}/ui/builds/flood`, () => Promise.resolve(stand.done()));
  await stand.close();
  printTable([
    ['time to first log line, opening a running build', `${firstLineMs.toFixed(0)} ms (navigation start to the first line drawn)`],
    ...floodRows('fleet flood', total, real),
    ...floodRows('stand-in API at 20,000 lines/s', total, synthetic),
    ['page weight (index.html + assets)', `${(weight.raw / 1024).toFixed(1)} KiB, ${(weight.gzip / 1024).toFixed(1)} KiB gzipped`],
  ]);
} finally {
  await browser.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
  await fleet.stop();
}
