/**
 * A build printing 200,000 lines: end-to-end lines/s, builder→follower latency p50/p99 (from
 * the worker's timestamp when it read the line to the follower receiving it), and peak RSS of
 * the worker process and of this process (coordinator + follower).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalFleet } from '../deploy/local/fleet.ts';
import { createLogger } from '../adapters/logger.ts';
import { printTable, quantile } from './table.ts';

const LINES = Number(process.env.BENCH_LINES ?? 200_000);

async function peakRssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}

const fleet = await startLocalFleet({ worker: { logs: { maxLiveLines: LINES + 1_000, maxLiveBytes: 1024 ** 3, maxLineChars: 16_384 } } }, createLogger('bench', { level: 'warn', pretty: false }));
const dir = await mkdtemp(join(tmpdir(), 'fleet-bench-logs-'));
try {
  await writeFile(
    join(dir, 'Dockerfile'),
    `ARG FLEET_REGISTRY\nFROM \${FLEET_REGISTRY}/official/base:1\nRUN i=0; while [ $i -lt ${LINES} ]; do echo "log line $i of the flood"; i=$((i+1)); done\nUSER 1000\n`,
  );
  const { digest } = await fleet.client.uploadContext(dir);
  const id = `bench-logs-${Date.now()}`;
  await fleet.client.submit({ id, context: { digest }, image: { repository: 'bench/logs', tags: ['1'] } });
  const latencies: number[] = [];
  let first = 0;
  let last = 0;
  let flood = 0;
  const final = await fleet.client.follow(id, {
    line: (l) => {
      if (!l.text.startsWith('log line ')) return;
      const now = Date.now();
      if (flood === 0) first = now;
      last = now;
      flood += 1;
      latencies.push(now - Date.parse(l.at));
    },
  });
  const seconds = (last - first) / 1000;
  const worker = fleet.workers[0];
  printTable([
    ['lines printed by the build', String(LINES)],
    ['lines received by the follower', String(flood)],
    ['build outcome', final.state.phase],
    ['end-to-end rate', `${Math.round(flood / seconds)} lines/s`],
    ['builder -> follower latency p50', `${quantile(latencies, 0.5)} ms`],
    ['builder -> follower latency p99', `${quantile(latencies, 0.99)} ms (target <= 50 ms)`],
    ['worker peak RSS', `${(worker === undefined ? NaN : await peakRssMb(worker.pid)).toFixed(0)} MB (process tree root; tsx loader included)`],
    ['coordinator + follower peak RSS (this process)', `${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`],
  ]);
} finally {
  await rm(dir, { recursive: true, force: true });
  await fleet.stop();
}
