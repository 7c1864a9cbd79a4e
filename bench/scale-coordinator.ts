/**
 * The scale bench's coordinator, in a process of its own (forked by bench/scale.ts), so its RSS
 * and CPU are the coordinator's alone: not the bench's, not the simulated workers', not the local
 * fleet's start. It runs the coordinator as its image does: the compiled app (its path is the
 * first argument, images/fleet/app-context.ts compileApp) with the image's node flags, no
 * TypeScript loader (this file itself runs through node's own type stripping). It takes the
 * fleet's coordinator options over IPC, starts a real coordinator, answers `sample` with its
 * memory and CPU, and closes on `stop` (the two-phase close: what it holds is finished first).
 */
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import type * as CoordinatorModule from '../coordinator/index.ts';
import type * as LoggerModule from '../adapters/logger.ts';
type CoordinatorOptions = CoordinatorModule.CoordinatorOptions;

/** parent → child */
export type CoordinatorOrder = { start: CoordinatorOptions } | { sample: true; resetLag?: boolean } | { stop: true };
/** child → parent */
export type CoordinatorAnswer = { ready: true; httpUrl: string } | { sample: CoordinatorSample } | { stopped: true } | { error: string };

export interface CoordinatorSample {
  rss: number;
  heapUsed: number;
  /** process CPU since start, µs (user + system) */
  cpuMicros: number;
  /** event loop delay p99 since the last resetLag, ms: the coordinator's own queueing */
  lagP99Ms: number;
}

const app = process.argv[2];
if (app === undefined) throw new Error('usage: scale-coordinator.ts <compiled app dir>');
const compiled = (module: string): string => pathToFileURL(join(app, module)).href;
const { startCoordinator } = (await import(compiled('coordinator/index.js'))) as typeof CoordinatorModule;
const { createLogger } = (await import(compiled('adapters/logger.js'))) as typeof LoggerModule;
const send = (answer: CoordinatorAnswer): void => void process.send?.(answer);
let coordinator: Awaited<ReturnType<typeof startCoordinator>> | null = null;
const lag = monitorEventLoopDelay({ resolution: 5 });
lag.enable();

// The bench gone (its own stop, or killed): this process goes too. Killed, the bench could not stop
// it, and an orphan kept polling a NATS server that was no more, writing into the next run's output.
process.once('disconnect', () => process.exit(0));

process.on('message', (order: CoordinatorOrder) => {
  if ('start' in order) {
    // warn, as the in-process coordinator of the earlier runs had: a log line per claim is not what is measured
    startCoordinator(order.start, createLogger('bench-coordinator', { level: 'warn', pretty: false })).then(
      (c) => {
        coordinator = c;
        send({ ready: true, httpUrl: c.httpUrl });
      },
      (e: unknown) => send({ error: e instanceof Error ? e.message : String(e) }),
    );
  } else if ('sample' in order) {
    const m = process.memoryUsage();
    const cpu = process.cpuUsage();
    send({ sample: { rss: m.rss, heapUsed: m.heapUsed, cpuMicros: cpu.user + cpu.system, lagP99Ms: lag.percentile(99) / 1e6 } });
    if (order.resetLag === true) lag.reset();
  } else {
    void (coordinator?.close() ?? Promise.resolve()).then(() => {
      send({ stopped: true });
      process.disconnect();
    });
  }
});
