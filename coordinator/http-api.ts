import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BuildId, ErrorCode, FleetError, PLATFORM_TENANT, decodeWith, httpStatusOf, parseWith, toFleetError, type ErrorBody, type WorkerInfo } from '../protocol/index.ts';
import type { Logger } from '../adapters/logger.ts';
import type { BuildStore } from './build-store.ts';
import type { CoordinatorConfig } from './config.ts';
import { cancelBuild } from './cancel.ts';
import { toView, type Intake } from './intake.ts';
import type { Authenticator } from './auth/index.ts';
import { requestIdOf, type AuditTrail } from './audit.ts';
import { authorizeAccess, mayAccess, type Caller } from './tenancy/authorize.ts';
import { z } from 'zod';
import { BuildListQuery, queryOf, type BuildList } from './build-list.ts';
import { streamBuildList } from './sse-builds.ts';
import type { DeadLetters } from './dead-letters.ts';
import { UI_DIST, serveUi } from './ui-assets.ts';
import { ConsoleLogins } from './console-login.ts';
import type { NotificationDelivery } from '../protocol/notification.ts';
import { authorizeNotifier, type Rebuilds } from './rebuilds/index.ts';


const BUILD_PATH = /^\/v1\/builds\/([^/]+)$/;
/** built once: a zod schema made per request cost its construction on every POST (the intake validates the fields) */
const ANY_JSON = z.unknown();
const LOGS_PATH = /^\/v1\/builds\/([^/]+)\/logs$/;
const LETTER_PATH = /^\/v1\/dead-letters\/([^/]+)(\/retry)?$/;

/** What the web console reads beyond single builds (coordinator wiring; absent: those routes 404). */
export interface ConsoleSources {
  builds: BuildList;
  workers(): Promise<WorkerInfo[]>;
  deadLetters: Pick<DeadLetters, 'list' | 'retry' | 'drop'>;
  /** webhook delivery attempts (coordinator/notifications), one tenant's or (undefined) every tenant's */
  notifications?: (tenant: string | undefined) => Promise<NotificationDelivery[]>;
}

/** Streams a build's log as Server-Sent Events (`log`, `event`, then `end`). */
export type LogStreamer = (id: string, res: ServerResponse, follow: boolean, signal: AbortSignal) => Promise<void>;

/** Unauthenticated operations endpoints: Prometheus metrics and readiness (coordinator/metrics.ts). */
export interface OpsEndpoints {
  metrics(): Promise<{ contentType: string; body: string }>;
  ready(): { ok: boolean };
}

/**
 * HTTP face of the coordinator: POST /v1/builds, GET /v1/builds/:id, GET /healthz, /readyz, /metrics.
 * Plain node:http keeps the dependency surface small; every body is parsed with its schema.
 */
export async function serveHttp(
  config: CoordinatorConfig,
  intake: Intake,
  store: BuildStore,
  streamLogs: LogStreamer,
  authenticator: Authenticator,
  audit: AuditTrail,
  log: Logger,
  ops?: OpsEndpoints,
  consoleSources?: ConsoleSources,
  /** rebuild on base update (coordinator/rebuilds): registry notifications in, waves out; absent: those routes 404 */
  rebuilds?: Rebuilds | null,
): Promise<{ server: Server; url: string }> {
  // the console's browser sign-in: the trusted OIDC issuers that have a login page
  const logins = await ConsoleLogins.fromFile(config.platform.oidcPath, log.child({ component: 'console-login' }));
  const server = createServer((req, res) => {
    route(req, res).catch((e: unknown) => {
      const err = toFleetError(e);
      if (err.code === ErrorCode.E_INTERNAL) log.error({ err: e, url: req.url }, 'http request failed');
      sendError(res, err);
    });
  });

  // A watch of the builds list never ends by itself: closing the server ends them, or close()
  // would wait for every console tab left open.
  const watches = new Set<AbortController>();
  const closeServer = server.close.bind(server);
  server.close = ((callback?: (err?: Error) => void) => {
    for (const ac of watches) ac.abort();
    return closeServer(callback);
  }) as typeof server.close;

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    if (path === '/healthz' && req.method === 'GET') return send(res, 200, { ok: true });
    if (path === '/readyz' && req.method === 'GET' && ops !== undefined) {
      const ready = ops.ready();
      return send(res, ready.ok ? 200 : 503, ready);
    }
    if (path === '/metrics' && req.method === 'GET' && ops !== undefined) {
      const m = await ops.metrics();
      res.writeHead(200, { 'content-type': m.contentType, 'content-length': Buffer.byteLength(m.body) });
      return void res.end(m.body);
    }
    // The web console's static files: public (they hold no data; the API calls carry the token).
    if (await serveUi(req.method ?? 'GET', path, res, UI_DIST, logins)) return;
    // Everything else is for authenticated callers only, and each sees only its tenant's builds.
    const caller = await authenticator.authenticate(req.headers.authorization);
    if (consoleSources !== undefined && (await consoleRoute(req, res, url, caller, consoleSources))) return;
    if (path === '/v1/notifications' && req.method === 'GET' && consoleSources?.notifications !== undefined) {
      // A tenant's callers see its deliveries; a platform admin every tenant's, or one with ?tenant=.
      const asked = url.searchParams.get('tenant') ?? undefined;
      const admin = caller.role === 'admin' && caller.tenant === PLATFORM_TENANT;
      if (asked !== undefined && !admin && asked !== caller.tenant) throw new FleetError(ErrorCode.E_FORBIDDEN, `forbidden: tenant: ${caller.tenant} may not read ${asked}'s notifications`);
      return send(res, 200, { deliveries: await consoleSources.notifications(admin ? asked : caller.tenant) });
    }
    if (rebuilds !== undefined && rebuilds !== null && (await rebuildRoute(req, res, url, caller, rebuilds))) return;
    const readable = async (id: string) => {
      const found = await store.get(id);
      if (found === null) throw new FleetError(ErrorCode.E_NOT_FOUND, `no build with id ${id}`);
      return found.record;
    };
    if (path === '/v1/builds') {
      if (req.method !== 'POST') return sendError(res, new FleetError(ErrorCode.E_INVALID_REQUEST, 'use POST /v1/builds (or GET to list)'), 405);
      const type = req.headers['content-type'] ?? '';
      if (!type.startsWith('application/json')) {
        return sendError(res, new FleetError(ErrorCode.E_INVALID_REQUEST, 'content-type must be application/json'), 415);
      }
      const body = await readBody(req, config.http.maxBodyBytes);
      const raw = decodeWith(ANY_JSON, body, 'build request');
      const accepted = await audit.around(caller, 'build.submit', requestIdOf(raw), () => intake.submit(raw, caller));
      return send(res, accepted.created ? 202 : 200, accepted);
    }
    const logs = LOGS_PATH.exec(path);
    if (logs !== null && req.method === 'GET') {
      const id = decodeURIComponent(logs[1] ?? '');
      authorizeAccess(caller, await readable(id), 'read');
      const ac = new AbortController();
      req.on('close', () => ac.abort());
      return streamLogs(id, res, url.searchParams.get('follow') === '1', ac.signal);
    }
    const match = BUILD_PATH.exec(path);
    if (match !== null && req.method === 'DELETE') {
      const id = decodeURIComponent(match[1] ?? '');
      return send(
        res,
        200,
        await audit.around(caller, 'build.cancel', id, async () => {
          authorizeAccess(caller, await readable(id), 'cancel');
          return cancelBuild(store, id);
        }),
      );
    }
    if (match !== null && req.method === 'GET') {
      const record = await readable(decodeURIComponent(match[1] ?? ''));
      authorizeAccess(caller, record, 'read');
      return send(res, 200, { build: toView(record) });
    }
    sendError(res, new FleetError(ErrorCode.E_NOT_FOUND, `no route ${req.method ?? ''} ${path}`));
  }

  /**
   * POST /v1/registry/events: a registry's push notifications (distribution's envelope, Harbor's
   * webhook), from a platform token; GET /v1/rebuilds[?base=REF]: the waves. True when it answered.
   */
  async function rebuildRoute(req: IncomingMessage, res: ServerResponse, url: URL, caller: Caller, r: Rebuilds): Promise<boolean> {
    if (url.pathname === '/v1/registry/events' && req.method === 'POST') {
      authorizeNotifier(caller);
      const body = decodeWith(z.unknown(), await readBody(req, config.http.maxBodyBytes), 'registry notification');
      send(res, 200, { noticed: r.notification(body) });
      return true;
    }
    if (url.pathname === '/v1/rebuilds' && req.method === 'GET') {
      send(res, 200, { waves: await r.list(caller, url.searchParams.get('base') ?? undefined), looks: r.looks() });
      return true;
    }
    return false;
  }

  /** GET /v1/builds[?watch=1], /v1/workers, /v1/dead-letters (+ retry, drop): true when it answered. */
  async function consoleRoute(req: IncomingMessage, res: ServerResponse, url: URL, caller: Caller, sources: ConsoleSources): Promise<boolean> {
    const path = url.pathname;
    if (path === '/v1/builds' && req.method === 'GET') {
      // ?watch=1: the same list live, as Server-Sent Events (coordinator/sse-builds.ts)
      const watch = url.searchParams.get('watch') === '1';
      url.searchParams.delete('watch');
      const query = decodeWith(BuildListQuery, Buffer.from(JSON.stringify(queryOf(url.searchParams))), 'build list query');
      if (watch) {
        const ac = new AbortController();
        res.on('close', () => ac.abort());
        watches.add(ac);
        res.on('close', () => watches.delete(ac));
        const lastEventId = req.headers['last-event-id'];
        await streamBuildList(sources.builds, caller, query, typeof lastEventId === 'string' ? lastEventId : undefined, res, ac.signal);
        return true;
      }
      send(res, 200, sources.builds.query(caller, query));
      return true;
    }
    if (path === '/v1/workers' && req.method === 'GET') {
      // Every caller sees the fleet's workers; the build a worker is on only if the caller may read it.
      const workers = (await sources.workers()).map((w) => {
        if (w.buildId === undefined) return w;
        const tenant = sources.builds.tenantOf(w.buildId);
        if (tenant !== undefined && mayAccess(caller, tenant, 'read')) return w;
        const rest: WorkerInfo = { ...w };
        delete rest.buildId;
        return rest;
      });
      send(res, 200, { workers });
      return true;
    }
    const letter = LETTER_PATH.exec(path);
    if (path !== '/v1/dead-letters' && letter === null) return false;
    if (caller.role !== 'admin' || caller.tenant !== PLATFORM_TENANT) {
      throw new FleetError(ErrorCode.E_FORBIDDEN, 'forbidden: role: the dead letter queue is for platform admins');
    }
    if (letter === null) {
      if (req.method !== 'GET') return false;
      send(res, 200, { letters: await sources.deadLetters.list() });
      return true;
    }
    const id = parseWith(BuildId, decodeURIComponent(letter[1] ?? ''), 'dead letter id');
    if (letter[2] === '/retry' && req.method === 'POST') {
      const retriedAs = await audit.around(caller, 'dlq.retry', id, () => sources.deadLetters.retry(id));
      send(res, 200, { retriedAs });
      return true;
    }
    if (letter[2] === undefined && req.method === 'DELETE') {
      await audit.around(caller, 'dlq.drop', id, () => sources.deadLetters.drop(id));
      send(res, 200, { dropped: id });
      return true;
    }
    return false;
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.http.port, config.http.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return { server, url: `http://${config.http.host}:${addr.port}` };
}

/** How much of an oversized body is still read (and dropped) to answer it: 16 MiB. */
const OVERSIZED_DRAIN_BYTES = 16 << 20;

/**
 * The request's body, at most `limit` bytes. Events, not `for await`: the stream's async iterator
 * costs a promise and its machinery per chunk, on every request intake answers.
 */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        // The rest is read and dropped so the 400 can be answered on this connection, up to a
        // bound: a client that goes on sending past it has its connection cut.
        req.off('data', onData);
        let dropped = 0;
        req.on('data', (rest: Buffer) => {
          dropped += rest.length;
          if (dropped > OVERSIZED_DRAIN_BYTES) req.destroy();
        });
        reject(new FleetError(ErrorCode.E_INVALID_REQUEST, `body larger than ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), ...headers });
  res.end(data);
}

function sendError(res: ServerResponse, err: FleetError, status?: number): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body: { error: ErrorBody } = { error: err.toBody() };
  // RFC 6750: a refused or missing token is answered with the scheme the client must use.
  send(res, status ?? httpStatusOf(err.code), body, err.code === ErrorCode.E_UNAUTHENTICATED ? { 'www-authenticate': 'Bearer realm="fleet"' } : {});
}
