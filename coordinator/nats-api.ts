import type { KV } from '@nats-io/kv';
import type { Msg, NatsConnection, Subscription } from '@nats-io/nats-core';
import { z } from 'zod';
import {
  COORDINATOR_QUEUE,
  ClaimRequest,
  ErrorCode,
  FleetError,
  StatusRequest,
  DlqRequest,
  WorkerInfo,
  decodeWith,
  encode,
  subjects,
  toFleetError,
  type ApiReply,
  type CancelReply,
  type ClaimReply,
  type WorkersReply,
  type DlqReply,
} from '../protocol/index.ts';
import type { Logger } from '../adapters/logger.ts';
import { claimState } from './attempts.ts';
import { cancelBuild } from './cancel.ts';
import type { CoordinatorConfig } from './config.ts';
import type { DeadLetters } from './dead-letters.ts';
import { expiredState } from './queue-expiry.ts';
import type { BuildStore } from './build-store.ts';
import { toView, type Intake } from './intake.ts';

/** The body is parsed as JSON here and validated field by field by the intake. */
const AnyJson = z.unknown();

/**
 * The request-reply API on NATS. Handlers never throw into the subscription: every request gets
 * an answer, an error answer included, and one bad message cannot stop the coordinator.
 */
export function serveNatsApi(
  nc: NatsConnection,
  intake: Intake,
  store: BuildStore,
  workers: KV,
  deadLetters: DeadLetters,
  config: CoordinatorConfig,
  log: Logger,
): Subscription[] {
  const serve = <R>(subject: string, handler: (data: Uint8Array) => Promise<R>, onError: (e: FleetError) => R): Subscription =>
    nc.subscribe(subject, {
      queue: COORDINATOR_QUEUE,
      callback: (err, msg: Msg) => {
        if (err !== null) {
          log.error({ err, subject }, 'subscription error');
          return;
        }
        handler(msg.data)
          .catch((e: unknown) => {
            const fe = toFleetError(e);
            if (fe.code === ErrorCode.E_INTERNAL) log.error({ err: e, subject }, 'request failed');
            return onError(fe);
          })
          .then((reply) => msg.respond(encode(reply)))
          .catch((e: unknown) => log.error({ err: e, subject }, 'could not answer request'));
      },
    });

  const apiError = (e: FleetError): ApiReply => ({ ok: false, error: e.toBody() });

  return [
    serve<ApiReply>(
      subjects.submit,
      async (data) => {
        const accepted = await intake.submit(decodeWith(AnyJson, data, 'build request'));
        return { ok: true, ...accepted };
      },
      apiError,
    ),
    serve<ApiReply>(
      subjects.status,
      async (data) => {
        const { id } = decodeWith(StatusRequest, data, 'status request');
        const found = await store.get(id);
        if (found === null) throw new FleetError(ErrorCode.E_NOT_FOUND, `no build with id ${id}`);
        return { ok: true, build: toView(found.record), created: false };
      },
      apiError,
    ),
    serve<DlqReply>(
      subjects.dlqApi,
      async (data) => {
        const req = decodeWith(DlqRequest, data, 'dlq request');
        if (req.op === 'retry') {
          const retriedAs = await deadLetters.retry(req.buildId);
          return { ok: true, letters: await deadLetters.list(), retriedAs };
        }
        if (req.op === 'drop') await deadLetters.drop(req.buildId);
        return { ok: true, letters: await deadLetters.list() };
      },
      (e) => ({ ok: false, error: e.toBody() }),
    ),
    serve<WorkersReply>(
      subjects.workers,
      async () => {
        const list: WorkerInfo[] = [];
        for await (const key of await workers.keys()) {
          const entry = await workers.get(key);
          if (entry === null || entry.operation !== 'PUT') continue;
          const parsed = WorkerInfo.safeParse(entry.json());
          if (parsed.success) list.push(parsed.data);
        }
        return { ok: true, workers: list.sort((a, b) => a.workerId.localeCompare(b.workerId)) };
      },
      (e) => ({ ok: false, error: e.toBody() }),
    ),
    serve<CancelReply>(
      subjects.cancel,
      async (data) => {
        const { id } = decodeWith(StatusRequest, data, 'cancel request');
        const result = await cancelBuild(store, id);
        if (result.cancelled) log.info({ buildId: id }, 'build cancelled');
        return { ok: true, ...result };
      },
      (e) => ({ ok: false, error: e.toBody() }),
    ),
    serve<ClaimReply>(
      subjects.claim,
      async (data) => {
        const claim = decodeWith(ClaimRequest, data, 'claim', ErrorCode.E_INVALID_JOB);
        const record = await store.transition(claim.buildId, (r) => claimState(r, claim, expiredState(r, config)));
        if (record.state.phase !== 'running') {
          throw new FleetError(ErrorCode.E_STALE_ATTEMPT, `build ${claim.buildId} ${record.state.phase} before a worker started it`);
        }
        log.info({ buildId: claim.buildId, workerId: claim.workerId, attempt: claim.attempt }, 'build started');
        return { ok: true };
      },
      (e) => ({ ok: false, error: e.toBody() }),
    ),
  ];
}
