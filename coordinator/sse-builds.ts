import type { ServerResponse } from 'node:http';
import type { BuildListEvent } from '../protocol/index.ts';
import type { BuildList, BuildListChange, BuildListQuery } from './build-list.ts';
import { matcher } from './build-list.ts';
import { mayAccess, type Caller } from './tenancy/authorize.ts';

export interface BuildStreamOptions {
  /** a comment line this often keeps proxies from closing an idle stream */
  heartbeatMs?: number;
  /** a client this far behind is cut off (it reconnects with Last-Event-ID) rather than buffered without end */
  maxBufferedBytes?: number;
}

/** `Last-Event-ID` as this module writes it: `EPOCH-SEQ`. */
const EVENT_ID = /^([a-z0-9]+)-(\d+)$/;

/**
 * `GET /v1/builds?watch=1` as Server-Sent Events (protocol/build-list.ts BuildListEvent): the
 * snapshot `GET /v1/builds` would answer, then upserts and removes as the coordinator's one watch
 * of the builds bucket (coordinator/build-list.ts) sees records change. Only builds `caller` may
 * read ever reach the stream: every change passes the same filter as the list, tenancy included.
 * Resolves when the client goes away (`signal`) or is cut off for falling behind.
 */
export function streamBuildList(
  list: BuildList,
  caller: Caller,
  query: BuildListQuery,
  lastEventId: string | undefined,
  res: ServerResponse,
  signal: AbortSignal,
  options: BuildStreamOptions = {},
): Promise<void> {
  const matches = matcher(caller, query);
  const maxBuffered = options.maxBufferedBytes ?? 1024 ** 2;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  const send = (seq: number, event: BuildListEvent): void => {
    res.write(`id: ${list.epoch}-${seq}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
  };

  // Snapshot (or replay) and subscription happen in one synchronous run, so no change can fall
  // between them: the list changes only from its watch callback, on this same thread.
  const matching = list.matching(caller, query);
  const resumeFrom = resumable(list, lastEventId);
  if (resumeFrom === null) {
    const { builds, total } = list.query(caller, query);
    send(list.cursor, { type: 'snapshot', builds, total });
  } else {
    // The current row of each build changed meanwhile (not every intermediate one): the client
    // ends up where a snapshot would put it, in fewer bytes.
    const changed = new Map<string, BuildListChange>();
    // another tenant's build is not even named in a remove
    for (const c of resumeFrom) if (mayAccess(caller, c.tenant, 'read')) changed.set(c.id, c);
    for (const c of changed.values()) {
      const now = list.get(c.id);
      if (now !== undefined && matches(now)) send(list.cursor, { type: 'upsert', build: now, total: matching.size });
      else send(list.cursor, { type: 'remove', id: c.id, total: matching.size });
    }
  }

  return new Promise<void>((resolve) => {
    const unsubscribe = list.subscribe((change) => {
      const row = change.summary;
      if (row !== null && matches(row)) {
        matching.add(change.id);
        send(change.seq, { type: 'upsert', build: row, total: matching.size });
      } else if (matching.delete(change.id)) {
        send(change.seq, { type: 'remove', id: change.id, total: matching.size });
      }
      if (res.writableLength > maxBuffered) {
        // It resumes from the last event it did read; the list keeps enough recent changes for that.
        res.destroy();
        done();
      }
    });
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), options.heartbeatMs ?? 15_000);
    const done = (): void => {
      unsubscribe();
      clearInterval(heartbeat);
      signal.removeEventListener('abort', done);
      if (!res.writableEnded) res.end();
      resolve();
    };
    if (signal.aborted) done();
    else signal.addEventListener('abort', done);
  });
}

/** The changes since `lastEventId`, if it names this list's run and is recent enough; else null (start from a snapshot). */
function resumable(list: BuildList, lastEventId: string | undefined): BuildListChange[] | null {
  const m = EVENT_ID.exec(lastEventId ?? '');
  if (m === null || m[1] !== list.epoch) return null;
  return list.changesSince(Number(m[2]));
}
