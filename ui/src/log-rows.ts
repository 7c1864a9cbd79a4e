import type { BuildEvent, BuildView } from './api.ts';

/**
 * Log lines as the log worker (log-worker.ts) hands them to the page: already split and
 * classified, in columns of typed arrays that are moved (transferred) across, not copied, so the
 * page receives a batch at no cost per line and only stores and draws it (line-store.ts).
 */
export interface LogRows {
  /** the lines' text, UTF-8, one after another */
  bytes: Uint8Array;
  /** per line: where its text ends in `bytes` (it starts where the previous one ends) */
  ends: Uint32Array;
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
