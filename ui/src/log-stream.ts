import { ApiError, refused, token, type BuildEvent, type BuildView } from './api.ts';
import type { FromLogWorker, LogRows, StartLog } from './log-rows.ts';

/** The log worker's hashed asset path, set by ui/build.ts (esbuild `define`) when it bundles the page. */
declare const __LOG_WORKER_URL__: string;

export interface LogHandlers {
  rows(batch: LogRows): void;
  event(e: BuildEvent): void;
  end(build: BuildView): void;
}

/**
 * Reads `GET /v1/builds/:id/logs` (Server-Sent Events, `?follow=1` while the build runs) in a
 * dedicated worker (log-worker.ts): the page gets parsed rows at most once per frame and only
 * draws them. Resolves when the stream ends; aborting ends the worker and its request.
 */
export function streamLog(id: string, follow: boolean, handlers: LogHandlers, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const worker = new Worker(__LOG_WORKER_URL__, { name: `log ${id}` });
    const stop = (): void => {
      worker.terminate();
      reject(signal.reason);
    };
    signal.addEventListener('abort', stop, { once: true });
    const finish = (): void => {
      signal.removeEventListener('abort', stop);
      worker.terminate();
    };
    worker.onmessage = (e: MessageEvent<FromLogWorker>) => {
      const m = e.data;
      if (m.type === 'rows') handlers.rows(m.rows);
      else if (m.type === 'event') handlers.event(m.event);
      else if (m.type === 'end') handlers.end(m.build);
      else if (m.type === 'done') {
        finish();
        resolve();
      } else {
        finish();
        reject(refused(m.status, m.code, m.message));
      }
    };
    worker.onerror = (e) => {
      finish();
      reject(new ApiError(0, 'E_LOG_WORKER', e.message || 'the log reader failed to start'));
    };
    const start: StartLog = { type: 'start', path: `/v1/builds/${encodeURIComponent(id)}/logs${follow ? '?follow=1' : ''}`, token: token.get() };
    worker.postMessage(start);
  });
}
