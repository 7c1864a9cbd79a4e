import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import { setTimeout as sleep } from 'node:timers/promises';
import { PermissionViolationError, RequestError, type NatsConnection } from '@nats-io/nats-core';
import {
  ApiReply,
  CancelReply,
  WorkersReply,
  DlqReply,
  ErrorCode,
  FleetError,
  PLATFORM_TENANT,
  decodeWith,
  encode,
  subjects,
  type BuildRequestInput,
  type BuildView,
  type WorkerInfo,
  type DeadLetter,
  type DlqRequest,
  TokensReply,
  type TokensRequest,
  type TokenView,
} from '../protocol/index.ts';
import { createLogger } from '../adapters/logger.ts';
import { readBuildLog, type LogHandlers } from '../adapters/build-log-reader.ts';
import { connectNats, type NatsCredentials } from '../adapters/nats.ts';
import { S3Store, contextKey, type S3Options } from '../adapters/s3-store.ts';
import { packContext } from './context-pack.ts';

const REQUEST_TIMEOUT_MS = 10_000;
/** Waits between asks while no coordinator is subscribed (a failover, a restart): 7.75 s in all. */
const NO_RESPONDERS_RETRY_MS = [250, 500, 1000, 2000, 4000];


/** What the CLI, the demo and the tests use to talk to a fleet: NATS only, parsed replies. */
export class FleetClient {
  private readonly js: JetStreamClient;

  private constructor(
    /** who this client is on NATS */
    readonly credentials: NatsCredentials,
    readonly nc: NatsConnection,
    readonly s3: S3Store,
    /** whose API subjects it uses: the platform for the admin user, else the tenant its user is for */
    readonly tenant: string,
    private readonly maxContextBytes: number,
  ) {
    this.js = jetstream(nc);
  }

  static async connect(natsUrl: string, credentials: NatsCredentials, s3: S3Options, opts: { maxContextBytes?: number } = {}): Promise<FleetClient> {
    try {
      const nc = await connectNats(natsUrl, 'fleet-cli', credentials, createLogger('fleet-client', { level: 'error' }));
      return new FleetClient(credentials, nc, new S3Store(s3), tenantOfUser(credentials.user), opts.maxContextBytes ?? 1024 ** 3);
    } catch (e) {
      throw new FleetError(ErrorCode.E_UNAVAILABLE, `cannot reach NATS at ${natsUrl}: ${String(e)}`, undefined, { cause: e });
    }
  }

  /**
   * Packs a context and uploads it to its content address unless S3 already has those bytes.
   * A context over the size limit is refused before anything is sent. `dockerfile` null: a
   * standard build's app package, which carries no Dockerfile.
   */
  async uploadContext(dir: string, dockerfile: string | null = 'Dockerfile'): Promise<{ digest: string; uploaded: boolean; bytes: number }> {
    const tmp = await mkdtemp(join(tmpdir(), 'fleet-ctx-'));
    try {
      const packed = await packContext(dir, dockerfile, join(tmp, 'context.tar.gz'));
      if (packed.bytes > this.maxContextBytes) {
        throw new FleetError(ErrorCode.E_INVALID_REQUEST, `context ${dir} packs to ${packed.bytes} bytes, over the limit of ${this.maxContextBytes}`, {
          issues: [{ path: 'context', message: `over the limit of ${this.maxContextBytes} bytes` }],
        });
      }
      const { uploaded } = await this.s3.putFileOnce(contextKey(packed.digest), packed.file);
      return { digest: packed.digest, uploaded, bytes: packed.bytes };
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }

  async submit(request: BuildRequestInput): Promise<{ build: BuildView; created: boolean }> {
    return this.call(subjects.submit(this.tenant), request);
  }

  /** Dead letters: list them, retry one as a new build, or drop one. */
  async dlq(req: DlqRequest): Promise<{ letters: DeadLetter[]; retriedAs?: string }> {
    const answer = decodeWith(DlqReply, (await this.request(subjects.dlqApi, req)).data, 'coordinator reply', ErrorCode.E_INTERNAL);
    if (!answer.ok) throw FleetError.fromBody(answer.error);
    return answer.retriedAs === undefined ? { letters: answer.letters } : { letters: answer.letters, retriedAs: answer.retriedAs };
  }

  /** HTTP API tokens (admin): create one (its secret is in the answer, once), list them, revoke one. */
  async tokens(req: TokensRequest): Promise<{ tokens: TokenView[]; token?: string }> {
    const answer = decodeWith(TokensReply, (await this.request(subjects.tokens, req)).data, 'coordinator reply', ErrorCode.E_INTERNAL);
    if (!answer.ok) throw FleetError.fromBody(answer.error);
    return answer.token === undefined ? { tokens: answer.tokens } : { tokens: answer.tokens, token: answer.token };
  }

  /** Live workers, as they announce themselves. */
  async workers(): Promise<WorkerInfo[]> {
    const answer = decodeWith(WorkersReply, (await this.request(subjects.workers, {})).data, 'coordinator reply', ErrorCode.E_INTERNAL);
    if (!answer.ok) throw FleetError.fromBody(answer.error);
    return answer.workers;
  }

  private async request(subject: string, body: unknown) {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.nc.request(subject, encode(body), { timeout: REQUEST_TIMEOUT_MS });
      } catch (e) {
        // The server itself refused: this client's NATS user may not ask that (e.g. a tenant asking an admin subject).
        if (e instanceof Error && (e instanceof PermissionViolationError || e.cause instanceof PermissionViolationError)) {
          throw new FleetError(ErrorCode.E_FORBIDDEN, `forbidden: NATS user ${this.credentials.user} may not publish to ${subject} (refused by the server)`, undefined, { cause: e });
        }
        // No coordinator subscribed at this moment: nothing was asked of anyone, so asking again is
        // safe, and during a NATS failover or a coordinator restart the answer comes seconds later.
        const delay = NO_RESPONDERS_RETRY_MS[attempt];
        if (delay !== undefined && e instanceof RequestError && e.isNoResponders()) {
          await sleep(delay);
          continue;
        }
        throw new FleetError(ErrorCode.E_UNAVAILABLE, `no coordinator answered on ${subject}: ${String(e)}`, undefined, { cause: e });
      }
    }
  }

  /** Cancels a queued or running build; `cancelled: false` when it had already ended. */
  async cancel(id: string): Promise<{ build: BuildView; cancelled: boolean }> {
    const answer = decodeWith(CancelReply, (await this.request(subjects.cancel(this.tenant), { id })).data, 'coordinator reply', ErrorCode.E_INTERNAL);
    if (!answer.ok) throw FleetError.fromBody(answer.error);
    return { build: answer.build, cancelled: answer.cancelled };
  }

  async status(id: string): Promise<BuildView> {
    return (await this.call(subjects.status(this.tenant), { id })).build;
  }

  /**
   * Replays a build's log and events from the first line. With `follow`, keeps following live
   * until the build ends; without, stops once caught up. Works before, during and after the
   * build (from the S3 archive once the live copy is gone), never shows a line twice.
   */
  async logs(id: string, handlers: LogHandlers, opts: { follow: boolean; signal?: AbortSignal }): Promise<BuildView> {
    const initial = await this.status(id);
    await readBuildLog(this.nc, this.js, this.s3, { id, pool: initial.request.pool }, initial.state.phase, handlers, {
      ...opts,
      currentPhase: async () => (await this.status(id)).state.phase,
    });
    return this.status(id);
  }

  /** Follows a build to its end (see logs). */
  follow(id: string, handlers: LogHandlers, signal?: AbortSignal): Promise<BuildView> {
    return this.logs(id, handlers, signal === undefined ? { follow: true } : { follow: true, signal });
  }

  async close(): Promise<void> {
    await this.nc.drain();
    this.s3.close();
  }

  private async call(subject: string, body: unknown): Promise<{ build: BuildView; created: boolean }> {
    const answer = decodeWith(ApiReply, (await this.request(subject, body)).data, 'coordinator reply', ErrorCode.E_INTERNAL);
    if (!answer.ok) throw FleetError.fromBody(answer.error);
    return { build: answer.build, created: answer.created };
  }
}

function tenantOfUser(user: string): string {
  if (user === 'admin') return PLATFORM_TENANT;
  if (user.startsWith('tenant-')) return user.slice('tenant-'.length);
  throw new FleetError(ErrorCode.E_INVALID_REQUEST, `NATS user ${user} is not a client user (admin or tenant-<name>)`);
}
