/**
 * The log's reader, off the page's main thread (a dedicated Web Worker, bundled by ui/build.ts as
 * its own hashed asset). A build printing 20,000 lines/s costs the page about 0.6 s of parsing per
 * 200,000 lines (UTF-8 decoding, SSE framing, one JSON.parse per line, the step-header test); here
 * that work cannot delay a frame. The page gets the lines in columns (log-rows.ts) at most once per
 * animation frame, and build events and the end in stream order after the lines before them.
 */
import { ApiError, readSse, type BuildEvent, type BuildView, type LogLine } from './api.ts';
import { STEP_HEADER, STREAM_CODE, type FromLogWorker, type StartLog } from './log-rows.ts';

/** The parts of DedicatedWorkerGlobalScope used here (the UI's tsconfig has the DOM lib, not WebWorker). */
interface WorkerScope {
  postMessage(message: FromLogWorker, transfer?: Transferable[]): void;
  onmessage: ((e: MessageEvent<StartLog>) => void) | null;
  requestAnimationFrame?: (cb: () => void) => number;
}
const scope = self as unknown as WorkerScope;

let texts: string[] = [];
let streams: number[] = [];
let heads: number[] = [];
let scheduled = false;

const encoder = new TextEncoder();

/**
 * Posts the lines read so far as one batch: their text encoded into one buffer (a structured
 * clone of an array of strings costs the page per string; a transferred buffer costs nothing).
 */
function flush(): void {
  scheduled = false;
  if (texts.length === 0) return;
  let room = 0;
  for (const t of texts) room += t.length * 3;
  const buffer = new Uint8Array(room);
  const ends = new Uint32Array(texts.length);
  let at = 0;
  for (let i = 0; i < texts.length; i++) {
    at += encoder.encodeInto(texts[i] ?? '', buffer.subarray(at)).written;
    ends[i] = at;
  }
  const rows = { bytes: buffer.slice(0, at), ends, streams: Uint8Array.from(streams), heads: Uint8Array.from(heads) };
  texts = [];
  streams = [];
  heads = [];
  scope.postMessage({ type: 'rows', rows }, [rows.bytes.buffer, rows.ends.buffer, rows.streams.buffer, rows.heads.buffer]);
}

/**
 * At most one batch per frame: Chrome and Firefox give dedicated workers requestAnimationFrame
 * (in step with the page's frames); elsewhere a 16 ms timer stands in for it.
 */
function schedule(): void {
  if (scheduled) return;
  scheduled = true;
  if (scope.requestAnimationFrame !== undefined) scope.requestAnimationFrame(flush);
  else setTimeout(flush, 16);
}

async function read(start: StartLog): Promise<void> {
  const res = await fetch(start.path, { headers: start.token === null ? {} : { authorization: `Bearer ${start.token}` } });
  await readSse(res, (messages) => {
    for (const { event, data } of messages) {
      if (event === 'log') {
        const l = JSON.parse(data) as LogLine;
        texts.push(l.text);
        streams.push(STREAM_CODE[l.stream]);
        heads.push(STEP_HEADER.test(l.text) ? 1 : 0);
        continue;
      }
      // keep order: the lines before an event reach the page before it
      if (event === 'event') {
        flush();
        scope.postMessage({ type: 'event', event: JSON.parse(data) as BuildEvent });
      } else if (event === 'end') {
        flush();
        scope.postMessage({ type: 'end', build: JSON.parse(data) as BuildView });
      }
    }
    schedule();
  });
  flush();
  scope.postMessage({ type: 'done' });
}

scope.onmessage = (e) => {
  if (e.data.type !== 'start') return;
  read(e.data).catch((err: unknown) => {
    flush();
    if (err instanceof ApiError) scope.postMessage({ type: 'error', status: err.status, code: err.code, message: err.message });
    else scope.postMessage({ type: 'error', status: 0, code: 'E_NETWORK', message: err instanceof Error ? err.message : String(err) });
  });
};
