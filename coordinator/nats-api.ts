import type { Msg, NatsConnection, Subscription } from '@nats-io/nats-core';
import { z } from 'zod';
import type { WorkerInfo } from '../protocol/index.ts';
import {
  COORDINATOR_QUEUE,
  ClaimRequest,
  ErrorCode,
  FleetError,
  StatusRequest,
  DlqRequest,
  decodeWith,
  encode,
  subjects,
  toFleetError,
  PLATFORM_TENANT,
  type ApiReply,
  type CancelReply,
  type ClaimReply,
  type BuildRecord,
  type WorkersReply,
  type DlqReply,
  TokensRequest,
  type TokensReply,
  TokenView,
  natsPermissions,
  type NatsRole,
} from '../protocol/index.ts';
import type { Logger } from '../adapters/logger.ts';
import { claimState } from './attempts.ts';
import type { RegisteredWorkers } from './registered-workers.ts';
import type { CoordinatorMetrics } from './metrics.ts';
import { cancelBuild } from './cancel.ts';
import type { CoordinatorConfig } from './config.ts';
import type { DeadLetters } from './dead-letters.ts';
import { expiredState } from './queue-expiry.ts';
import type { BuildStore } from './build-store.ts';
import { toView, type Intake } from './intake.ts';
import { requestIdOf, type AuditTrail } from './audit.ts';
import { createToken, revokeToken, type TokenRecord, type TokenStore } from './auth/index.ts';
import { PLATFORM_ADMIN, authorizeAccess, type Caller } from './tenancy/authorize.ts';

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
  /** the claim check's view of the workers bucket */
  registered: RegisteredWorkers,
  /** every announced worker (coordinator/worker-list.ts) */
  listWorkers: () => Promise<WorkerInfo[]>,
  deadLetters: DeadLetters,
  tokens: TokenStore,
  audit: AuditTrail,
  config: CoordinatorConfig,
  metrics: Pick<CoordinatorMetrics, 'apiAnswer'>,
  log: Logger,
): Subscription[] {
  const serve = <R>(
    subject: string,
    asker: (subject: string) => NatsRole,
    handler: (data: Uint8Array, subject: string) => Promise<R>,
    onError: (e: FleetError) => R,
  ): Subscription => {
    const answered = metrics.apiAnswer.labels({ api: apiName(subject) });
    return nc.subscribe(subject, {
      queue: COORDINATOR_QUEUE,
      callback: (err, msg: Msg) => {
        const end = answered.startTimer();
        if (err !== null) {
          log.error({ err, subject }, 'subscription error');
          return;
        }
        // The coordinator may publish to streams and the KV: answering on a reply subject the
        // sender chose would let it write there (a tenant could overwrite any build record).
        if (!repliesToAsker(msg.reply, asker(msg.subject))) {
          log.warn({ subject: msg.subject, reply: msg.reply }, "refused a request whose reply subject is not its asker's inbox");
          return;
        }
        handler(msg.data, msg.subject)
          .catch((e: unknown) => {
            const fe = toFleetError(e);
            if (fe.code === ErrorCode.E_INTERNAL) log.error({ err: e, subject }, 'request failed');
            return onError(fe);
          })
          .then((reply) => {
            msg.respond(encode(reply));
            end();
          })
          .catch((e: unknown) => log.error({ err: e, subject }, 'could not answer request'));
      },
    });
  };

  const apiError = (e: FleetError): ApiReply => ({ ok: false, error: e.toBody() });

  /**
   * The claimant must be a registered worker of the pool its NATS user proves. Only a refusal
   * reads the record here (an unknown build is still answered as unknown); an accepted claim's
   * record is read once, by the transition.
   */
  const checkRegistered = async (claim: ClaimRequest, pool: string): Promise<void> => {
    if (await registered.has(pool, claim.workerId)) return;
    if ((await store.get(claim.buildId)) === null) throw new FleetError(ErrorCode.E_NOT_FOUND, `no build with id ${claim.buildId}`);
    log.warn({ buildId: claim.buildId, workerId: claim.workerId, pool }, 'refused a claim from an unregistered worker');
    throw new FleetError(ErrorCode.E_FORBIDDEN, `forbidden: workerId: ${claim.workerId} is not a registered worker of pool ${pool}`);
  };

  /**
   * A claim's event was sent before its reply; should JetStream refuse it (no ack, an error), it
   * is published once more (the message id makes a repeat a no-op), then logged as lost.
   */
  const eventuallyStored = async (stored: Promise<void>, record: BuildRecord): Promise<void> => {
    try {
      await stored;
    } catch (first) {
      log.warn({ err: first, buildId: record.id }, 'the event of an answered claim was not stored; publishing it again');
      await store.publishEvent(record).catch((e: unknown) => log.error({ err: e, buildId: record.id }, 'the event of an answered claim could not be stored'));
    }
  };

  return [
    serve<ApiReply>(
      subjects.submit('*'),
      tenantAsker,
      async (data, subject) => {
        const raw = decodeWith(AnyJson, data, 'build request');
        const caller = callerOf(subject);
        const accepted = await audit.around(caller, 'build.submit', requestIdOf(raw), () => intake.submit(raw, caller));
        return { ok: true, ...accepted };
      },
      apiError,
    ),
    serve<ApiReply>(
      subjects.status('*'),
      tenantAsker,
      async (data, subject) => {
        const { id } = decodeWith(StatusRequest, data, 'status request');
        const found = await store.get(id);
        if (found === null) throw new FleetError(ErrorCode.E_NOT_FOUND, `no build with id ${id}`);
        authorizeAccess(callerOf(subject), found.record, 'read');
        return { ok: true, build: toView(found.record), created: false };
      },
      apiError,
    ),
    serve<DlqReply>(
      subjects.dlqApi,
      adminAsker,
      async (data) => {
        const req = decodeWith(DlqRequest, data, 'dlq request');
        if (req.op === 'retry') {
          const retriedAs = await audit.around(PLATFORM_ADMIN, 'dlq.retry', req.buildId, () => deadLetters.retry(req.buildId));
          return { ok: true, letters: await deadLetters.list(), retriedAs };
        }
        if (req.op === 'drop') await audit.around(PLATFORM_ADMIN, 'dlq.drop', req.buildId, () => deadLetters.drop(req.buildId));
        return { ok: true, letters: await deadLetters.list() };
      },
      (e) => ({ ok: false, error: e.toBody() }),
    ),
    // Admin only: the server lets no tenant user publish here.
    serve<TokensReply>(
      subjects.tokens,
      adminAsker,
      async (data) => {
        const req = decodeWith(TokensRequest, data, 'tokens request');
        if (req.op === 'create') {
          const created = await audit.around(PLATFORM_ADMIN, 'token.create', `${req.tenant}/${req.role}/${req.name}`, () =>
            createToken(tokens, {
              tenant: req.tenant,
              role: req.role,
              name: req.name,
              createdBy: PLATFORM_ADMIN.subject,
              ...(req.ttlSeconds === undefined ? {} : { ttlSeconds: req.ttlSeconds }),
            }),
          );
          log.info({ tokenId: created.record.id, tenant: req.tenant, role: req.role }, 'API token created');
          return { ok: true, tokens: [tokenView(created.record)], token: created.token };
        }
        if (req.op === 'revoke') {
          const revoked = await audit.around(PLATFORM_ADMIN, 'token.revoke', req.id, () => revokeToken(tokens, req.id, PLATFORM_ADMIN.subject));
          log.info({ tokenId: req.id }, 'API token revoked');
          return { ok: true, tokens: [tokenView(revoked)] };
        }
        return { ok: true, tokens: (await tokens.list(req.tenant)).map(tokenView) };
      },
      (e) => ({ ok: false, error: e.toBody() }),
    ),
    serve<WorkersReply>(
      subjects.workers,
      adminAsker,
      async () => {
        return { ok: true, workers: await listWorkers() };
      },
      (e) => ({ ok: false, error: e.toBody() }),
    ),
    serve<CancelReply>(
      subjects.cancel('*'),
      tenantAsker,
      async (data, subject) => {
        const { id } = decodeWith(StatusRequest, data, 'cancel request');
        const caller = callerOf(subject);
        const result = await audit.around(caller, 'build.cancel', id, async () => {
          const found = await store.get(id);
          if (found === null) throw new FleetError(ErrorCode.E_NOT_FOUND, `no build with id ${id}`);
          authorizeAccess(caller, found.record, 'cancel');
          return cancelBuild(store, id);
        });
        if (result.cancelled) log.info({ buildId: id }, 'build cancelled');
        return { ok: true, ...result };
      },
      (e) => ({ ok: false, error: e.toBody() }),
    ),
    serve<ClaimReply>(
      subjects.claim('*'),
      (s) => ({ kind: 'worker', pool: subjects.callerOf(s) }),
      async (data, subject) => {
        const claim = decodeWith(ClaimRequest, data, 'claim', ErrorCode.E_INVALID_JOB);
        const pool = subjects.callerOf(subject);
        await checkRegistered(claim, pool);
        // The pool check reads the record the claim transition reads anyway: one KV read, not two.
        // The reply waits on the record's CAS and goes out behind the `started` event on the same
        // connection, but not on that event's ack (a round trip): see BuildStore.transitionSent.
        const { record, stored } = await store.transitionSent(claim.buildId, (r) => {
          if (r.request.pool !== pool) {
            log.warn({ buildId: claim.buildId, workerId: claim.workerId, pool }, 'refused a claim from another pool');
            throw new FleetError(ErrorCode.E_FORBIDDEN, `forbidden: pool: build ${claim.buildId} is not on pool ${pool}`);
          }
          return claimState(r, claim, expiredState(r, config));
        });
        if (record.state.phase !== 'running') {
          // rare (expired in the queue): the refusal waits for the event and the job's withdrawal
          await eventuallyStored(stored, record);
          throw new FleetError(ErrorCode.E_STALE_ATTEMPT, `build ${claim.buildId} ${record.state.phase} before a worker started it`);
        }
        void eventuallyStored(stored, record);
        // debug, not info: one line per claim is a hot-path cost, and the `started` event records it
        log.debug({ buildId: claim.buildId, workerId: claim.workerId, attempt: claim.attempt }, 'build started');
        return { ok: true };
      },
      (e) => ({ ok: false, error: e.toBody() }),
    ),
  ];
}

/** `fleet.v1.api.claim.*` → `claim`: the metrics' label of an API subject. */
const apiName = (subject: string): string => subject.split('.')[3] ?? subject;

/** Who may ask on a per-tenant API subject: the tenant's user, or the platform's admins under `platform`. */
const tenantAsker = (subject: string): NatsRole => {
  const tenant = subjects.callerOf(subject);
  return tenant === PLATFORM_TENANT ? { kind: 'admin' } : { kind: 'tenant', tenant };
};
const adminAsker = (): NatsRole => ({ kind: 'admin' });

/**
 * A request is answered only in the inbox of the user the server lets publish its subject, or
 * of an admin (who may publish anything). Every client's replies come there (adapters/nats.ts),
 * and no other user may subscribe to that inbox.
 */
function repliesToAsker(reply: string | undefined, asker: NatsRole): boolean {
  if (reply === undefined) return false;
  return [asker, { kind: 'admin' } as const].some((role) => reply.startsWith(`${natsPermissions(role).inboxPrefix}.`));
}

/**
 * Who asks on a per-tenant API subject: the server lets a tenant's user publish only under its
 * own name, and only the platform's admins under `platform`.
 */
function callerOf(subject: string): Caller {
  const tenant = subjects.callerOf(subject);
  return tenant === PLATFORM_TENANT ? PLATFORM_ADMIN : { subject: `nats:tenant-${tenant}`, tenant, role: 'submitter' };
}

/** A token as listed: the hash stays in the store. */
function tokenView(r: TokenRecord): TokenView {
  return TokenView.parse(r);
}
