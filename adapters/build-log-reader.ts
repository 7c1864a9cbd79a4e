import { DeliverPolicy, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { createGunzip } from 'node:zlib';
import { createInterface } from 'node:readline';
import {
  BuildEvent,
  ErrorCode,
  LogBatch,
  LogLine as LogLineSchema,
  type LogLine,
  PHASE_OF_EVENT,
  decodeWith,
  isTerminal,
  streams,
  subjects,
  type Phase,
} from '../protocol/index.ts';
import type { S3Store } from './s3-store.ts';

const WATCHDOG_MS = 5_000;

export interface LogHandlers {
  line?(line: LogLine): void;
  event?(event: BuildEvent): void;
}

/**
 * Replays a build's log lines and events in order from the first, then (with `follow`) keeps
 * following until the build ends. Lines whose live copy has aged out of JetStream are read from
 * the S3 archive instead. One reader for the CLI and the HTTP API (Server-Sent Events).
 */
export async function readBuildLog(
  nc: NatsConnection,
  js: JetStreamClient,
  s3: S3Store,
  build: { readonly id: string; readonly pool: string },
  phaseNow: Phase,
  handlers: LogHandlers,
  opts: { follow: boolean; signal?: AbortSignal; currentPhase?: () => Promise<Phase> },
): Promise<void> {
  const { id, pool } = build;
  // Only the build's own pool may publish its log lines: the pool is the subject's last token.
  const logSubject = subjects.log(id, pool);
  const ended = isTerminal(phaseNow);
  if (ended && (await liveLineCount(nc, logSubject)) === 0) await replayArchive(s3, id, handlers);
  const consumer = await js.consumers.get(streams.builds, {
    filter_subjects: [logSubject, subjects.event(id)],
    deliver_policy: DeliverPolicy.All,
  });
  const stopWhenCaughtUp = !opts.follow || ended;
  if (stopWhenCaughtUp && (await consumer.info(true)).num_pending === 0) return;
  const messages = await consumer.consume();
  const close = (): void => void messages.close();
  opts.signal?.addEventListener('abort', close, { once: true });
  // A safety net for following: should the terminal event never arrive (aged out, or lost to a
  // consumer reset), the build's record still ends the follow once nothing is left to read.
  const currentPhase = opts.currentPhase;
  const watchdog =
    stopWhenCaughtUp || currentPhase === undefined
      ? null
      : setInterval(() => {
          void (async () => {
            if (isTerminal(await currentPhase()) && (await consumer.info(true)).num_pending === 0) close();
          })().catch(() => undefined);
        }, WATCHDOG_MS);
  try {
    for await (const m of messages) {
      if (m.subject === logSubject) {
        const batch = decodeWith(LogBatch, m.data, 'log batch', ErrorCode.E_INTERNAL);
        for (const l of batch.lines) handlers.line?.({ buildId: batch.buildId, attempt: batch.attempt, ...l });
      } else {
        const event = decodeWith(BuildEvent, m.data, 'build event', ErrorCode.E_INTERNAL);
        handlers.event?.(event);
        if (isTerminal(PHASE_OF_EVENT[event.type])) break;
      }
      if (stopWhenCaughtUp && m.info.pending === 0) break;
    }
  } finally {
    if (watchdog !== null) clearInterval(watchdog);
    opts.signal?.removeEventListener('abort', close);
    await messages.close();
  }
}

async function liveLineCount(nc: NatsConnection, logSubject: string): Promise<number> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(streams.builds, { subjects_filter: logSubject });
  return info.state.subjects?.[logSubject] ?? 0;
}

/** Every archived attempt, oldest first, as the worker stored it (gzip, one JSON line each). */
async function replayArchive(s3: S3Store, id: string, handlers: LogHandlers): Promise<void> {
  const keys = (await s3.list(`logs/${id}/`)).map((o) => o.key).sort();
  for (const key of keys) {
    const body = await s3.get(key);
    if (body === null) continue;
    for await (const text of createInterface({ input: body.pipe(createGunzip()), crlfDelay: Infinity })) {
      if (text !== '') handlers.line?.(decodeWith(LogLineSchema, text, 'archived log line', ErrorCode.E_INTERNAL));
    }
  }
}
