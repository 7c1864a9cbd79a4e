import type { BuildEvent, BuildView } from './api.ts';

/**
 * Log lines as the log worker (log-worker.ts) hands them to the page: already decoded, split and
 * classified, in columns, so the page only stores and draws them. `streams` and `heads` are typed
 * arrays, moved (transferred) across, not copied.
 */
export interface LogRows {
  texts: string[];
  /** per line: 0 stdout, 1 stderr, 2 system */
  streams: Uint8Array;
  /** per line: 1 when it is a builder's step header (foldable) */
  heads: Uint8Array;
}

/** The page asks the worker to read one build's log. */
export interface StartLog {
  type: 'start';
  /** same-origin path, e.g. /v1/builds/ID/logs?follow=1 */
  path: string;
  /** the bearer token (the worker cannot read the page's sessionStorage) */
  token: string | null;
}

/** What the worker posts back, in the order the stream carried it. */
export type FromLogWorker =
  | { type: 'rows'; rows: LogRows }
  | { type: 'event'; event: BuildEvent }
  | { type: 'end'; build: BuildView }
  | { type: 'done' }
  | { type: 'error'; status: number; code: string; message: string };

export const STREAM_CODE = { stdout: 0, stderr: 1, system: 2 } as const;

/** The step headers of buildah (`STEP 2/5: RUN …`), BuildKit (`#6 [2/3] RUN …`) and kaniko (`INFO[0003] RUN …`). */
export const STEP_HEADER = /^(STEP \d+\/\d+: |#\d+ \[[^\]]*\d+\/\d+\] |INFO\[\d+\] (?:RUN|FROM|COPY|ADD|WORKDIR|USER|ENV|ARG|LABEL|CMD|ENTRYPOINT) )/;
