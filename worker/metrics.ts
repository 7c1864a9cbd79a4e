import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { WorkerPhase, type WorkerReport } from '../protocol/index.ts';
import type { Logger } from '../adapters/logger.ts';
import type { AttemptLog, RunnerPorts } from './ports.ts';

export type WorkerMetrics = ReturnType<typeof createWorkerMetrics>;

/** A worker's Prometheus metrics, in a registry of its own. */
export function createWorkerMetrics(labels: { pool: string; builder: string }, options: { processMetrics?: boolean } = {}) {
  const registry = new Registry();
  registry.setDefaultLabels(labels);
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry });
  const state = new Gauge({
    name: 'fleet_worker_state',
    help: 'The worker state (1 for the current one): starting, idle, building, draining, stopped, failed',
    labelNames: ['state'] as const,
    registers: [registry],
  });
  const builds = new Counter({
    name: 'fleet_worker_builds_total',
    help: 'Attempts this worker reported, by outcome (pushed, failed) and error code (failed only)',
    labelNames: ['outcome', 'code'] as const,
    registers: [registry],
  });
  const logLines = new Counter({
    name: 'fleet_worker_log_lines_total',
    help: 'Builder output lines, by stream',
    labelNames: ['stream'] as const,
    registers: [registry],
  });
  const setState = (phase: WorkerPhase): void => {
    for (const p of WorkerPhase.options) state.set({ state: p }, p === phase ? 1 : 0);
  };
  setState('starting');
  return { registry, state, builds, logLines, setState };
}

/** Counts what the runner reports and logs through its ports, leaving them otherwise as they are. */
export function meteredPorts(ports: RunnerPorts, metrics: WorkerMetrics): RunnerPorts {
  return {
    ...ports,
    claim: (buildId, attempt, jobSeq) => ports.claim(buildId, attempt, jobSeq),
    watchCancel: (buildId, onCancel) => ports.watchCancel(buildId, onCancel),
    fetchContext: (job, tarball, dir, signal) => ports.fetchContext(job, tarball, dir, signal),
    registry: (host) => ports.registry(host),
    builder: ports.builder,
    lifecycle: ports.lifecycle,
    async report(report: WorkerReport) {
      await ports.report(report);
      // `resolved` is said while a build runs: not an outcome
      if (report.type !== 'resolved') metrics.builds.inc({ outcome: report.type, code: report.type === 'failed' ? report.error.code : '' });
    },
    openLog(buildId, attempt, archiveFile, masker): AttemptLog {
      const log = ports.openLog(buildId, attempt, archiveFile, masker);
      const line = log.line.bind(log);
      log.line = (stream, text) => {
        metrics.logLines.inc({ stream });
        return line(stream, text);
      };
      return log;
    },
  };
}

/**
 * GET /metrics and GET /healthz (200 while the worker is not stopped or failed) on all
 * interfaces, for Prometheus and the kubelet. Port 0 picks a free port.
 */
export async function serveWorkerMetrics(
  port: number,
  metrics: WorkerMetrics,
  healthy: () => boolean,
  log: Logger,
): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (req.method === 'GET' && path === '/healthz') {
      const ok = healthy();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify({ ok }));
    }
    if (req.method === 'GET' && path === '/metrics') {
      metrics.registry.metrics().then(
        (body) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(body);
        },
        (e: unknown) => {
          log.error({ err: e }, 'could not render metrics');
          res.writeHead(500).end();
        },
      );
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  log.info({ metricsPort: bound }, 'metrics listening');
  return {
    server,
    port: bound,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
