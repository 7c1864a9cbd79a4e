import { writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { execa } from 'execa';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { AuthorizationError, PermissionViolationError, nkeyAuthenticator, nkeys, type Msg, type NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { connectNats, type NatsCredentials } from '../../adapters/nats.ts';
import { createLogger } from '../../adapters/logger.ts';
import { fetchManifestDigest } from '../../adapters/registry-client.ts';
import { FleetClient, auditTrail } from '../../client/index.ts';
import { Tenancy, type TenancyConfig } from '../../coordinator/tenancy/tenants.ts';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import {
  ApiReply,
  BuildRecord,
  ClaimReply,
  ErrorCode,
  ExitCode,
  buckets,
  consumers,
  encode,
  isFleetError,
  streams,
  subjects,
  workerKey,
  type BuildRequestInput,
  type WorkerReport,
} from '../../protocol/index.ts';
import { AUDIENCE, GITHUB_LIKE_CLAIMS, ISSUER, base64url, idToken, jwksFile, signingKey, type SigningKey } from '../coordinator/auth/oidc-fixtures.ts';
import { eventually, eventuallyValue } from '../helpers/eventually.ts';
import { FLEET_BIN, adminFetch, cliEnv, fixture, startTestFleet } from '../helpers/fleet.ts';

/**
 * Issue 13 end to end, per role: who may do what on a real nats-server (refused by the server,
 * not by our code), tenancy at intake over NATS and HTTP, API tokens and OIDC, the live tenancy
 * file, and the CLI. One fleet for the file: tenants payments and search on `default`, and a
 * pool `other` no worker serves.
 */

const PAYMENTS: TenancyConfig['tenants'][number] = { name: 'payments', repositories: ['app/payments/*'], pools: ['default'], secrets: { default: ['npm-token'] }, limits: {} };
const SEARCH: TenancyConfig['tenants'][number] = { name: 'search', repositories: ['app/search/*'], pools: ['default'], secrets: {}, limits: {} };

/** An admin build queued on `other` (no worker): a record and a pending job the matrix tries to touch. */
const TARGET = 'matrix-target';
/** payments' and search's own builds (tenancy over NATS), read across tenants by the later tests */
const PAY_BUILD = 'pay-api-1';
const SEARCH_BUILD = 'search-web-1';

const quiet = createLogger('identity-test', { pretty: false, level: 'silent' });
const decode = (m: Msg): unknown => JSON.parse(new TextDecoder().decode(m.data));

let fleet: LocalFleet;
let context: string;
let key: SigningKey;
let jwks: Awaited<ReturnType<typeof jwksFile>>;
let payments: FleetClient;
let search: FleetClient;
let jsm: JetStreamManager;
let buildsKv: KV;
let workersKv: KV;
const opened: NatsConnection[] = [];

const request = (id: string, repository: string, over: Partial<BuildRequestInput> = {}): BuildRequestInput => ({
  id,
  context: { digest: context },
  image: { repository, tags: ['1'] },
  ...over,
});

/** The jobs stream's last sequence: any job stored by anyone moves it. */
const lastJobSeq = async (): Promise<number> => (await jsm.streams.info(streams.jobs)).state.last_seq;

/** What the admin sees of a build id: its record's tenant, or null when nothing was recorded. */
async function recorded(id: string): Promise<string | null> {
  try {
    return (await fleet.client.status(id)).tenant;
  } catch (e) {
    if (isFleetError(e, ErrorCode.E_NOT_FOUND)) return null;
    throw e;
  }
}

interface Probe {
  nc: NatsConnection;
  /** resolves once the server has reported refusing `operation` on `subject` to this connection */
  refused(operation: 'publish' | 'subscription', subject: string): Promise<void>;
}

function credentialsOf(user: string): NatsCredentials {
  const credentials = fleet.natsCredentials[user];
  if (credentials === undefined) throw new Error(`no NATS user ${user} in the fleet`);
  return credentials;
}

/** A connection with one fleet user's credentials, recording every permission violation the server reports. */
async function connectAs(user: string): Promise<Probe> {
  const nc = await connectNats(fleet.nats.url, `identity-test-${user}`, credentialsOf(user), quiet);
  opened.push(nc);
  const violations: PermissionViolationError[] = [];
  void (async () => {
    for await (const s of nc.status()) if (s.type === 'error' && s.error instanceof PermissionViolationError) violations.push(s.error);
  })();
  return {
    nc,
    refused: (operation, subject) =>
      eventually(() => violations.some((v) => v.operation === operation && v.subject === subject), 5_000, `the server to refuse ${user} ${operation} to ${subject}`),
  };
}

/** `attempt` must fail because the server refused publishing to `subject`, and the server must have said so. */
async function denied(probe: Probe, attempt: Promise<unknown>, subject: string): Promise<void> {
  const err = await attempt.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err, `publishing to ${subject} should have been refused`).toBeInstanceOf(Error);
  const violation = err instanceof PermissionViolationError ? err : (err as Error).cause;
  expect(violation, String(err)).toBeInstanceOf(PermissionViolationError);
  expect((violation as PermissionViolationError).subject).toBe(subject);
  await probe.refused('publish', subject);
}

/** A subscription the server refuses: it closes with the violation, also reported on the connection. */
async function deniedSubscription(probe: Probe, subject: string): Promise<void> {
  const sub = probe.nc.subscribe(subject);
  const closedWith = await sub.closed;
  expect(closedWith, `subscribing to ${subject} should have been refused`).toBeInstanceOf(PermissionViolationError);
  await probe.refused('subscription', subject);
}

function workerInfo(pool: string, workerId: string): Uint8Array {
  const now = new Date().toISOString();
  return encode({ workerId, pool, builder: 'buildah', version: 'identity-test', state: 'idle', since: now, at: now });
}

/** tag → digest of every tag in a registry repository (empty when the repository does not exist) */
async function tagsOf(repository: string): Promise<Record<string, string | null>> {
  const res = await fetch(`http://${fleet.registry.host}/v2/${repository}/tags/list`);
  if (res.status === 404) return {};
  expect(res.status).toBe(200);
  const { tags } = (await res.json()) as { tags: string[] | null };
  const out: Record<string, string | null> = {};
  for (const tag of tags ?? []) out[tag] = await fetchManifestDigest({ host: fleet.registry.host, insecure: true }, repository, tag);
  return out;
}

beforeAll(async () => {
  key = await signingKey('fleet-ci-1', 'ES256');
  jwks = await jwksFile([key]);
  fleet = await startTestFleet({
    tenants: [PAYMENTS, SEARCH],
    coordinator: { pools: ['default', 'other'] },
    oidc: [{ issuer: ISSUER, audience: AUDIENCE, jwks: { file: jwks.path }, rules: [{ claims: { repository_owner: 'payments' }, tenant: 'payments', role: 'submitter' }] }],
  });
  context = (await fleet.client.uploadContext(fixture('tiny'))).digest;
  payments = await FleetClient.connect(fleet.nats.url, credentialsOf('tenant-payments'), fleet.s3.options);
  search = await FleetClient.connect(fleet.nats.url, credentialsOf('tenant-search'), fleet.s3.options);
  jsm = await jetstreamManager(fleet.client.nc);
  buildsKv = await new Kvm(fleet.client.nc).open(buckets.builds);
  workersKv = await new Kvm(fleet.client.nc).open(buckets.workers);
  await fleet.client.submit(request(TARGET, 'app/matrix/target', { pool: 'other' }));
});

afterAll(async () => {
  await Promise.all(opened.map((nc) => nc.close()));
  await payments?.close();
  await search?.close();
  await fleet?.stop();
  await jwks?.dispose();
});

describe('NATS permissions, enforced by the server', () => {
  it('lets a worker of default use its own queue, claim subject and registry key', async () => {
    const w = await connectAs('worker-default');
    const claim = ClaimReply.parse(decode(await w.nc.request(subjects.claim('default'), encode({ buildId: 'no-such-build', attempt: 1, workerId: 'probe' }), { timeout: 10_000 })));
    // Reached the coordinator, which answered on the merits.
    expect(claim).toMatchObject({ ok: false, error: { code: 'E_NOT_FOUND' } });
    const own = await jetstream(w.nc).consumers.get(streams.jobs, consumers.pool('default'));
    expect((await own.info()).name).toBe(consumers.pool('default'));
    const registry = await new Kvm(w.nc).open(buckets.workers);
    await registry.put(workerKey('default', 'identity-probe'), workerInfo('default', 'identity-probe'));
    expect((await workersKv.get(workerKey('default', 'identity-probe')))?.operation).toBe('PUT');
    await workersKv.delete(workerKey('default', 'identity-probe'));
  });

  it('refuses a claim by a worker that never announced itself (the record untouched), and lets in one that announced itself just before', async () => {
    await fleet.client.submit(request('claim-probe-1', 'app/matrix/claim-probe', { pool: 'other' }));
    const before = await buildsKv.get('claim-probe-1');
    const w = await connectAs('worker-other');
    const claim = (workerId: string) => w.nc.request(subjects.claim('other'), encode({ buildId: 'claim-probe-1', attempt: 1, workerId }), { timeout: 10_000 }).then((m) => ClaimReply.parse(decode(m)));
    expect(await claim('never-announced')).toMatchObject({ ok: false, error: { code: 'E_FORBIDDEN' } });
    expect((await buildsKv.get('claim-probe-1'))?.revision).toBe(before?.revision);
    // announced, then at once claiming, as a starting worker does
    await (await new Kvm(w.nc).open(buckets.workers)).put(workerKey('other', 'just-announced'), workerInfo('other', 'just-announced'));
    expect(await claim('just-announced')).toEqual({ ok: true });
    const record = BuildRecord.parse((await buildsKv.get('claim-probe-1'))?.json());
    expect(record.state).toMatchObject({ phase: 'running', workerId: 'just-announced', attempt: 1 });
    await workersKv.delete(workerKey('other', 'just-announced'));
  });

  it("refuses a worker of default jobs, build records, another pool's queue, reports, claims and registry keys, and nothing is written", async () => {
    const w = await connectAs('worker-default');
    const js = jetstream(w.nc);
    const jobsBefore = await lastJobSeq();
    const targetBefore = (await buildsKv.get(TARGET))?.revision;
    expect(targetBefore).toBeGreaterThan(0);
    const otherBefore = await jsm.consumers.info(streams.jobs, consumers.pool('other'));
    expect(otherBefore.num_pending).toBeGreaterThan(0);

    // no job of its own making, on its pool or any
    await denied(w, js.publish(subjects.jobs('default'), encode({ v: 1, buildId: 'forged-job', pool: 'default' })), subjects.jobs('default'));
    // build records are the coordinator's: a worker reads them (cancel watch), never writes
    const builds = await new Kvm(w.nc).open(buckets.builds);
    await denied(w, builds.put(TARGET, encode({ forged: true })), `$KV.${buckets.builds}.${TARGET}`);
    // another pool's queue: neither its consumer nor its messages
    await denied(w, js.consumers.get(streams.jobs, consumers.pool('other')), `$JS.API.CONSUMER.INFO.${streams.jobs}.${consumers.pool('other')}`);
    const next = `$JS.API.CONSUMER.MSG.NEXT.${streams.jobs}.${consumers.pool('other')}`;
    await denied(w, w.nc.request(next, encode({ batch: 1, no_wait: true }), { timeout: 5_000 }), next);
    // reports, claims and registry entries under another pool's name
    const report: WorkerReport = { type: 'failed', buildId: TARGET, attempt: 1, workerId: 'impostor', at: new Date().toISOString(), error: { code: 'E_INTERNAL', message: 'forged' } };
    await denied(w, js.publish(subjects.report(TARGET, 'other'), encode(report)), subjects.report(TARGET, 'other'));
    await denied(w, w.nc.request(subjects.claim('other'), encode({ buildId: TARGET, attempt: 1, workerId: 'impostor' }), { timeout: 5_000 }), subjects.claim('other'));
    const registry = await new Kvm(w.nc).open(buckets.workers);
    await denied(w, registry.put(workerKey('other', 'impostor'), workerInfo('other', 'impostor')), `$KV.${buckets.workers}.other.impostor`);
    // and it listens to nothing but its own replies
    await deniedSubscription(w, 'fleet.v1.>');

    expect(await lastJobSeq()).toBe(jobsBefore);
    expect((await buildsKv.get(TARGET))?.revision).toBe(targetBefore);
    const otherAfter = await jsm.consumers.info(streams.jobs, consumers.pool('other'));
    expect(otherAfter.delivered.consumer_seq).toBe(otherBefore.delivered.consumer_seq);
    expect(otherAfter.num_pending).toBe(otherBefore.num_pending);
    const reports = subjects.report(TARGET, 'other');
    expect((await jsm.streams.info(streams.builds, { subjects_filter: reports })).state.subjects?.[reports] ?? 0).toBe(0);
    expect(await workersKv.get(workerKey('other', 'impostor'))).toBeNull();
    expect((await fleet.client.status(TARGET)).state.phase).toBe('queued');
  });

  it('delivers what a worker-made consumer of the builds bucket reads only to that worker\'s own inbox', async () => {
    // The worker may create consumers on the builds bucket (its cancel watch); a push consumer
    // aimed at some other subject must not turn that into a way to publish there.
    const w = await connectAs('worker-default');
    const elsewhere: Msg[] = [];
    const admin = fleet.client.nc.subscribe('identity.probe.>', { callback: (_e, m) => void elsewhere.push(m) });
    await fleet.client.nc.flush();
    const mine: Msg[] = [];
    w.nc.subscribe('_INBOX_worker-default.identity-probe', { callback: (_e, m) => void mine.push(m) });
    await w.nc.flush();
    const create = async (name: string, deliver: string): Promise<void> => {
      const filter = `$KV.${buckets.builds}.${TARGET}`;
      const body = { stream_name: `KV_${buckets.builds}`, config: { name, deliver_subject: deliver, ack_policy: 'none', deliver_policy: 'last_per_subject', filter_subject: filter } };
      const answer = decode(await w.nc.request(`$JS.API.CONSUMER.CREATE.KV_${buckets.builds}.${name}.${filter}`, encode(body), { timeout: 5_000 })) as { error?: unknown };
      expect(answer.error).toBeUndefined();
    };
    await create('identity-probe-elsewhere', 'identity.probe.push');
    await create('identity-probe-mine', '_INBOX_worker-default.identity-probe');
    await eventually(() => mine.length > 0, 10_000, "the build record at the worker's own inbox");
    const info = await jsm.consumers.info(`KV_${buckets.builds}`, 'identity-probe-elsewhere');
    expect(info.delivered.stream_seq).toBe(0);
    await fleet.client.nc.flush();
    expect(elsewhere).toHaveLength(0);
    admin.unsubscribe();
    for (const name of ['identity-probe-elsewhere', 'identity-probe-mine']) await jsm.consumers.delete(`KV_${buckets.builds}`, name);
  });

  it("refuses tenant payments another tenant's subjects, the admin subjects, streams and other inboxes, and nothing is recorded", async () => {
    const t = await connectAs('tenant-payments');
    const own = ApiReply.parse(decode(await t.nc.request(subjects.status('payments'), encode({ id: 'no-such-build' }), { timeout: 10_000 })));
    expect(own).toMatchObject({ ok: false, error: { code: 'E_NOT_FOUND' } });

    const jobsBefore = await lastJobSeq();
    const cross = request('cross-submit-1', 'app/search/x');
    await denied(t, t.nc.request(subjects.submit('search'), encode(cross), { timeout: 5_000 }), subjects.submit('search'));
    await denied(t, t.nc.request(subjects.submit('platform'), encode(request('cross-submit-2', 'app/search/x')), { timeout: 5_000 }), subjects.submit('platform'));
    await denied(t, t.nc.request(subjects.status('search'), encode({ id: SEARCH_BUILD }), { timeout: 5_000 }), subjects.status('search'));
    await denied(t, t.nc.request(subjects.tokens, encode({ op: 'create', tenant: 'payments', role: 'admin', name: 'escalate' }), { timeout: 5_000 }), subjects.tokens);
    await denied(t, t.nc.request(subjects.workers, encode({}), { timeout: 5_000 }), subjects.workers);
    await denied(t, t.nc.request(subjects.dlqApi, encode({ op: 'ls' }), { timeout: 5_000 }), subjects.dlqApi);
    await denied(t, t.nc.request(subjects.jobs('default'), encode({ v: 1 }), { timeout: 5_000 }), subjects.jobs('default'));
    await denied(t, t.nc.request(`$KV.${buckets.builds}.${TARGET}`, encode({ forged: true }), { timeout: 5_000 }), `$KV.${buckets.builds}.${TARGET}`);
    await denied(t, t.nc.request('$JS.API.STREAM.NAMES', encode({}), { timeout: 5_000 }), '$JS.API.STREAM.NAMES');
    for (const subject of ['fleet.v1.>', '_INBOX_tenant-search.>', '_INBOX_admin.>', '>']) await deniedSubscription(t, subject);

    expect(await recorded('cross-submit-1')).toBeNull();
    expect(await recorded('cross-submit-2')).toBeNull();
    expect(await lastJobSeq()).toBe(jobsBefore);
    expect((await fleet.client.tokens({ op: 'list' })).tokens.map((x) => x.name)).not.toContain('escalate');
  });

  it("answers a request only in the asker's own inbox: a forged reply subject makes the coordinator write nothing anywhere", async () => {
    // The coordinator may publish to JetStream and the KV; a reply subject chosen by a tenant
    // must not borrow that (a reply into $KV would overwrite another tenant's build record).
    const t = await connectAs('tenant-payments');
    const s = await connectAs('tenant-search');
    const intoSearch: Msg[] = [];
    s.nc.subscribe('_INBOX_tenant-search.forged', { callback: (_e, m) => void intoSearch.push(m) });
    await s.nc.flush();
    const targetBefore = (await buildsKv.get(TARGET))?.revision;
    const jobsBefore = await lastJobSeq();
    for (const reply of [`$KV.${buckets.builds}.${TARGET}`, subjects.jobs('other'), '_INBOX_tenant-search.forged']) {
      t.nc.publish(subjects.status('payments'), encode({ id: TARGET }), { reply });
      t.nc.publish(subjects.submit('payments'), encode(request('forged-reply-1', 'app/payments/forged')), { reply });
    }
    // Requests on one connection reach the coordinator in order: once two later ones are
    // answered, the forged ones have been handled (or dropped).
    for (let i = 0; i < 2; i++) {
      expect(ApiReply.parse(decode(await t.nc.request(subjects.status('payments'), encode({ id: TARGET }), { timeout: 10_000 })))).toMatchObject({ ok: false, error: { code: 'E_NOT_FOUND' } });
    }
    await s.nc.flush();
    expect((await buildsKv.get(TARGET))?.revision).toBe(targetBefore);
    expect(await lastJobSeq()).toBe(jobsBefore);
    expect(intoSearch).toHaveLength(0);
    // a request whose answer could not go to its asker is not acted on either
    expect(await recorded('forged-reply-1')).toBeNull();
  });

  it('admits no client without credentials, nor one with an nkey the server does not know', async () => {
    const unknownUser = nkeyAuthenticator(nkeys.createUser().getSeed());
    for (const auth of [{}, { authenticator: unknownUser }]) {
      const err = await connect({ servers: fleet.nats.url, reconnect: false, ...auth }).then(
        async (nc) => {
          await nc.close();
          return null;
        },
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(AuthorizationError);
    }
  });
});

describe('tenancy over NATS', () => {
  it('refuses a tenant building into what it does not own, naming the field, and records and queues nothing', async () => {
    const jobsBefore = await lastJobSeq();
    const cases: Array<[BuildRequestInput, ErrorCode, string]> = [
      [request('ten-cross-1', 'app/search/x'), ErrorCode.E_FORBIDDEN, 'image.repository'],
      [request('ten-unowned-1', 'app/nobody/x'), ErrorCode.E_FORBIDDEN, 'image.repository'],
      [request('ten-official-1', 'official/base'), ErrorCode.E_INVALID_REQUEST, 'image.repository'],
      [request('ten-cache-1', 'cache/app/search/x'), ErrorCode.E_INVALID_REQUEST, 'image.repository'],
      [request('ten-secret-1', 'app/payments/x', { secrets: ['prod-db'] }), ErrorCode.E_FORBIDDEN, 'secrets.0'],
      [request('ten-pool-1', 'app/payments/x', { pool: 'other' }), ErrorCode.E_FORBIDDEN, 'pool'],
    ];
    for (const [req, code, path] of cases) {
      const err = await payments.submit(req).catch((e: unknown) => e);
      expect(isFleetError(err, code), `${req.id}: ${String(err)}`).toBe(true);
      if (isFleetError(err)) expect(err.details?.issues?.map((i) => i.path), req.id).toContain(path);
      expect(await recorded(req.id), req.id).toBeNull();
    }
    expect(await lastJobSeq()).toBe(jobsBefore);
  });

  it("accepts each tenant's own build as that tenant's; the other tenant can neither see nor cancel it", async () => {
    const mine = await payments.submit(request(PAY_BUILD, 'app/payments/api'));
    expect(mine).toMatchObject({ created: true, build: { id: PAY_BUILD, tenant: 'payments' } });
    const theirs = await search.submit(request(SEARCH_BUILD, 'app/search/web'));
    expect(theirs).toMatchObject({ created: true, build: { id: SEARCH_BUILD, tenant: 'search' } });
    const record = BuildRecord.parse((await buildsKv.get(PAY_BUILD))?.json());
    expect(record.tenant).toBe('payments');

    for (const [client, id] of [[payments, SEARCH_BUILD], [search, PAY_BUILD]] as const) {
      // exactly as for an id nobody used
      // one at a time: a request started early and awaited late rejects with no handler yet
      for (const attempt of [() => client.status(id), () => client.cancel(id), () => client.status('never-used')]) {
        const err = await attempt().catch((e: unknown) => e);
        expect(isFleetError(err, ErrorCode.E_NOT_FOUND), `${client.tenant} on ${id}: ${String(err)}`).toBe(true);
      }
    }
    expect((await payments.status(PAY_BUILD)).tenant).toBe('payments');
    const [a, b] = await Promise.all([fleet.client.follow(PAY_BUILD, {}), fleet.client.follow(SEARCH_BUILD, {})]);
    expect(a.state.phase).toBe('pushed');
    expect(b.state.phase).toBe('pushed');
  });

  it("keeps search out of payments' build cache: its build for app/payments/api is refused and the cache stays as payments' build left it", async () => {
    const before = await tagsOf('cache/app/payments/api');
    expect(Object.keys(before).length, "payments' build should have filled its cache").toBeGreaterThan(0);
    for (const [id, repository, code] of [
      ['poison-1', 'app/payments/api', ErrorCode.E_FORBIDDEN],
      ['poison-2', 'cache/app/payments/api', ErrorCode.E_INVALID_REQUEST],
    ] as const) {
      const err = await search.submit(request(id, repository)).catch((e: unknown) => e);
      expect(isFleetError(err, code), String(err)).toBe(true);
      expect(await recorded(id)).toBeNull();
    }
    // search's own build cached under its own repository, nowhere else
    expect(Object.keys(await tagsOf('cache/app/search/web')).length).toBeGreaterThan(0);
    expect(await tagsOf('cache/app/payments/api')).toEqual(before);
    // every build that ever wrote under app/payments/ (and so its cache) is payments'
    for await (const id of await buildsKv.keys()) {
      const entry = await buildsKv.get(id);
      if (entry === null || entry.operation !== 'PUT') continue;
      const r = BuildRecord.parse(entry.json());
      if (r.request.image.repository.startsWith('app/payments/')) expect(r.tenant, r.id).toBe('payments');
    }
  });
});

interface HttpAnswer {
  status: number;
  headers: Headers;
  body: unknown;
}

describe('HTTP API identity', () => {
  const call = async (method: 'GET' | 'POST' | 'DELETE', path: string, authorization: string | null, body?: unknown): Promise<HttpAnswer> => {
    const headers: Record<string, string> = {};
    if (authorization !== null) headers.authorization = authorization;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${fleet.coordinator.httpUrl}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    return { status: res.status, headers: res.headers, body: (await res.json()) as unknown };
  };
  const bearer = (token: string): string => `Bearer ${token}`;
  const token = async (tenant: string, role: 'submitter' | 'reader' | 'admin', name: string): Promise<{ id: string; token: string }> => {
    const created = await fleet.client.tokens({ op: 'create', tenant, role, name });
    expect(created.token).toMatch(/^flt_/);
    return { id: created.tokens[0]?.id ?? '', token: created.token ?? '' };
  };

  it('asks every caller but /healthz for a bearer token: none, or a garbage one, is 401 with www-authenticate', async () => {
    expect((await call('GET', '/healthz', null)).status).toBe(200);
    const attempts: Array<['GET' | 'POST' | 'DELETE', string, unknown]> = [
      ['POST', '/v1/builds', request('http-anon-1', 'app/payments/anon')],
      ['GET', `/v1/builds/${PAY_BUILD}`, undefined],
      ['GET', `/v1/builds/${PAY_BUILD}/logs`, undefined],
      ['DELETE', `/v1/builds/${PAY_BUILD}`, undefined],
    ];
    const garbage = [null, '', 'Bearer', 'Bearer nonsense', `Bearer flt_00000000_${'a'.repeat(43)}`, `Bearer ${fleet.adminToken}x`, `Basic ${Buffer.from('admin:admin').toString('base64')}`, 'Bearer eyJnot-a-jwt'];
    for (const authorization of garbage) {
      for (const [method, path, body] of attempts) {
        const res = await call(method, path, authorization, body);
        expect(res.status, `${method} ${path} with ${String(authorization)}`).toBe(401);
        expect(res.headers.get('www-authenticate')).toMatch(/^Bearer /);
        expect(res.body).toMatchObject({ error: { code: 'E_UNAUTHENTICATED' } });
      }
    }
    expect(await recorded('http-anon-1')).toBeNull();
    expect((await fleet.client.status(PAY_BUILD)).state.phase).toBe('pushed');
  });

  it("scopes a tenant's submitter token: 403 naming image.repository, 404 for another tenant's build, 202 for its own", async () => {
    const { token: submitter } = await token('payments', 'submitter', 'http-submitter');
    const forbidden = await call('POST', '/v1/builds', bearer(submitter), request('http-cross-1', 'app/search/x'));
    expect(forbidden.status).toBe(403);
    expect(forbidden.body).toMatchObject({ error: { code: 'E_FORBIDDEN', details: { issues: [{ path: 'image.repository' }] } } });
    expect(await recorded('http-cross-1')).toBeNull();

    for (const [method, path] of [['GET', `/v1/builds/${SEARCH_BUILD}`], ['GET', `/v1/builds/${SEARCH_BUILD}/logs`], ['DELETE', `/v1/builds/${SEARCH_BUILD}`]] as const) {
      const res = await call(method, path, bearer(submitter));
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.body).toMatchObject({ error: { code: 'E_NOT_FOUND', message: `no build with id ${SEARCH_BUILD}` } });
    }
    expect((await fleet.client.status(SEARCH_BUILD)).state.phase).toBe('pushed');
    expect(await call('GET', `/v1/builds/${PAY_BUILD}`, bearer(submitter))).toMatchObject({ status: 200, body: { build: { id: PAY_BUILD, tenant: 'payments' } } });

    const accepted = await call('POST', '/v1/builds', bearer(submitter), request('http-pay-1', 'app/payments/http'));
    expect(accepted).toMatchObject({ status: 202, body: { created: true, build: { tenant: 'payments' } } });
    expect(await call('DELETE', '/v1/builds/http-pay-1', bearer(submitter))).toMatchObject({ status: 200, body: { cancelled: true } });
  });

  it("lets a reader token read its tenant's builds, but not submit or cancel them", async () => {
    const { token: reader } = await token('payments', 'reader', 'http-reader');
    const post = await call('POST', '/v1/builds', bearer(reader), request('http-reader-1', 'app/payments/reader'));
    expect(post.status).toBe(403);
    expect(post.body).toMatchObject({ error: { code: 'E_FORBIDDEN', details: { issues: [{ path: 'role' }] } } });
    expect(await recorded('http-reader-1')).toBeNull();
    expect(await call('GET', `/v1/builds/${PAY_BUILD}`, bearer(reader))).toMatchObject({ status: 200, body: { build: { id: PAY_BUILD } } });
    expect((await call('DELETE', `/v1/builds/${PAY_BUILD}`, bearer(reader))).status).toBe(403);
    expect((await call('GET', `/v1/builds/${SEARCH_BUILD}`, bearer(reader))).status).toBe(404);
  });

  it('refuses a revoked token at once', async () => {
    const { id, token: submitter } = await token('payments', 'submitter', 'http-revoked');
    expect((await call('GET', `/v1/builds/${PAY_BUILD}`, bearer(submitter))).status).toBe(200);
    await fleet.client.tokens({ op: 'revoke', id });
    const res = await call('GET', `/v1/builds/${PAY_BUILD}`, bearer(submitter));
    expect(res.status).toBe(401);
    expect(res.body).toMatchObject({ error: { code: 'E_UNAUTHENTICATED' } });
  });

  it("keeps a tenant's admin-role token inside its tenant: only the platform's admins see every tenant", async () => {
    const { token: tenantAdmin } = await token('payments', 'admin', 'http-tenant-admin');
    expect((await call('GET', `/v1/builds/${SEARCH_BUILD}`, bearer(tenantAdmin))).status).toBe(404);
    const cross = await call('POST', '/v1/builds', bearer(tenantAdmin), request('http-admin-cross-1', 'app/search/x'));
    expect(cross).toMatchObject({ status: 403, body: { error: { code: 'E_FORBIDDEN', details: { issues: [{ path: 'image.repository' }] } } } });
    expect(await recorded('http-admin-cross-1')).toBeNull();
    expect((await call('GET', `/v1/builds/${PAY_BUILD}`, bearer(tenantAdmin))).status).toBe(200);
    // the platform's own admin token still sees everyone's
    expect((await adminFetch(fleet, `${fleet.coordinator.httpUrl}/v1/builds/${SEARCH_BUILD}`)).status).toBe(200);
  });

  it("accepts a CI job's OIDC ID token for the tenant a rule maps it to, scoped like any of that tenant's callers", async () => {
    const ci = await idToken(key);
    const accepted = await call('POST', '/v1/builds', bearer(ci), request('oidc-pay-1', 'app/payments/oidc'));
    expect(accepted).toMatchObject({ status: 202, body: { created: true, build: { tenant: 'payments' } } });
    expect((await call('GET', '/v1/builds/oidc-pay-1', bearer(ci))).status).toBe(200);
    expect((await call('GET', `/v1/builds/${SEARCH_BUILD}`, bearer(ci))).status).toBe(404);
    const cross = await call('POST', '/v1/builds', bearer(ci), request('oidc-cross-1', 'app/search/x'));
    expect(cross.status).toBe(403);
    expect(await recorded('oidc-cross-1')).toBeNull();
    expect(await call('DELETE', '/v1/builds/oidc-pay-1', bearer(ci))).toMatchObject({ status: 200 });
  });

  it('refuses expired, wrong-audience, wrong-issuer, unsigned and foreign-signed ID tokens (401), and one no rule maps (403)', async () => {
    const now = Math.floor(Date.now() / 1000);
    const stranger = await signingKey(key.kid, key.alg);
    const unsigned = `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url({ ...GITHUB_LIKE_CLAIMS, iss: ISSUER, aud: AUDIENCE, sub: 'repo:payments/app', iat: now, exp: now + 600 })}.`;
    const refused: Array<[string, string]> = [
      ['expired', await idToken(key, { iat: now - 3_600, exp: now - 600 })],
      ['wrong audience', await idToken(key, { aud: 'https://someone-else.example.com' })],
      ['wrong issuer', await idToken(key, { iss: 'https://token.evil.example.com' })],
      ['alg none', unsigned],
      ['signed by a key not in the JWKS', await idToken(stranger)],
    ];
    for (const [what, jwt] of refused) {
      const res = await call('POST', '/v1/builds', bearer(jwt), request(`oidc-bad-${what.replace(/ /g, '-')}`, 'app/payments/oidc'));
      expect(res.status, what).toBe(401);
      expect(res.body, what).toMatchObject({ error: { code: 'E_UNAUTHENTICATED' } });
      expect(res.headers.get('www-authenticate'), what).toMatch(/^Bearer /);
    }
    const unmapped = await call('POST', '/v1/builds', bearer(await idToken(key, { claims: { repository_owner: 'marketing' } })), request('oidc-unmapped-1', 'app/payments/oidc'));
    expect(unmapped.status).toBe(403);
    expect(unmapped.body).toMatchObject({ error: { code: 'E_FORBIDDEN' } });
    for (const [what] of refused) expect(await recorded(`oidc-bad-${what.replace(/ /g, '-')}`)).toBeNull();
    expect(await recorded('oidc-unmapped-1')).toBeNull();
  });

  it('measures what authentication adds to a request (printed, not asserted)', async () => {
    const { token: submitter } = await token('payments', 'submitter', 'http-bench');
    const duplicate = request('http-pay-1', 'app/payments/http');
    const time = async (n: number, fn: () => Promise<Response>): Promise<number> => {
      const ms: number[] = [];
      for (let i = 0; i < n + 20; i++) {
        const t0 = performance.now();
        const res = await fn();
        await res.arrayBuffer();
        if (i >= 20) ms.push(performance.now() - t0);
      }
      return ms.sort((a, b) => a - b)[Math.floor(ms.length / 2)] ?? Number.NaN;
    };
    const url = fleet.coordinator.httpUrl;
    const healthz = await time(500, () => fetch(`${url}/healthz`));
    const refused = await time(500, () => fetch(`${url}/v1/builds/${PAY_BUILD}`));
    const read = await time(500, () => fetch(`${url}/v1/builds/${PAY_BUILD}`, { headers: { authorization: bearer(submitter) } }));
    const post = await time(500, () =>
      fetch(`${url}/v1/builds`, { method: 'POST', headers: { authorization: bearer(submitter), 'content-type': 'application/json' }, body: JSON.stringify(duplicate) }),
    );
    const check = await fetch(`${url}/v1/builds`, { method: 'POST', headers: { authorization: bearer(submitter), 'content-type': 'application/json' }, body: JSON.stringify(duplicate) });
    expect(check.status).toBe(200);
    console.log(
      `auth cost, p50 of 500 sequential requests: GET /healthz ${healthz.toFixed(2)} ms; GET /v1/builds/:id without a token (401) ${refused.toFixed(2)} ms; ` +
        `with an API token ${read.toFixed(2)} ms; authenticated POST /v1/builds duplicate ${post.toFixed(2)} ms`,
    );
  });
});

describe('tenancy file reload', () => {
  it('applies a rewritten tenancy file without a restart, and keeps the last good one when the file is broken', async () => {
    const early = await payments.submit(request('reload-0', 'app/payments2/x')).catch((e: unknown) => e);
    expect(isFleetError(early, ErrorCode.E_FORBIDDEN)).toBe(true);
    const grown = JSON.stringify({ tenants: [{ ...PAYMENTS, repositories: [...PAYMENTS.repositories, 'app/payments2/*'] }, SEARCH] }, null, 2);
    await writeFile(fleet.tenancyPath, grown);
    const accepted = await eventuallyValue(
      async () => {
        try {
          return await payments.submit(request('reload-1', 'app/payments2/x'));
        } catch (e) {
          if (isFleetError(e, ErrorCode.E_FORBIDDEN)) return undefined;
          throw e;
        }
      },
      20_000,
      'the rewritten tenancy file to apply',
    );
    expect(accepted).toMatchObject({ created: true, build: { tenant: 'payments' } });
    await fleet.client.cancel('reload-1');

    const load = vi.spyOn(Tenancy, 'load');
    const settled = (type: 'fulfilled' | 'rejected'): number => load.mock.settledResults.filter((r) => r.type === type).length;
    try {
      const broken = [
        '{ "tenants": [ { "name": "payments", ',
        // valid JSON the coordinator must still refuse: applied, it would take payments' repositories away
        JSON.stringify({ tenants: [{ ...PAYMENTS, name: 'platform' }, SEARCH] }),
      ];
      for (const [i, text] of broken.entries()) {
        const refusedBefore = settled('rejected');
        await writeFile(fleet.tenancyPath, text);
        await eventually(() => settled('rejected') > refusedBefore, 20_000, 'the coordinator to read and refuse the broken tenancy file');
        const kept = await payments.submit(request(`reload-kept-${i}`, 'app/payments2/y'));
        expect(kept).toMatchObject({ created: true, build: { tenant: 'payments' } });
        await fleet.client.cancel(`reload-kept-${i}`);
        const still = await search.submit(request(`reload-search-${i}`, 'app/payments2/z')).catch((e: unknown) => e);
        expect(isFleetError(still, ErrorCode.E_FORBIDDEN)).toBe(true);
      }
      const goodBefore = settled('fulfilled');
      await writeFile(fleet.tenancyPath, grown);
      await eventually(() => settled('fulfilled') > goodBefore, 20_000, 'the coordinator to read the repaired tenancy file');
    } finally {
      load.mockRestore();
    }
  });
});

describe('tenant limits', () => {
  it('refuses a tenant a new build past its limit of active builds, and accepts one again once a build ends', async () => {
    // search may now also use `other`, where no worker runs: its builds stay queued, so they stay active.
    const limited = { ...SEARCH, pools: ['default', 'other'], limits: { maxActiveBuilds: 2 } };
    await writeFile(fleet.tenancyPath, JSON.stringify({ tenants: [{ ...PAYMENTS, repositories: [...PAYMENTS.repositories, 'app/payments2/*'] }, limited] }));
    const onOther = (id: string) => search.submit({ ...request(id, 'app/search/limited'), pool: 'other' });
    await eventuallyValue(
      async () => onOther('limit-1').catch((e: unknown) => (isFleetError(e, ErrorCode.E_FORBIDDEN) ? undefined : Promise.reject(e))),
      20_000,
      'the tenancy with the limit to apply',
    );
    await onOther('limit-2');
    // The coordinator counts from a watch of the records: submit until it has seen both (a build
    // it let through meanwhile is cancelled, so it does not count).
    let n = 0;
    const refused = await eventuallyValue(
      async () => {
        const id = `limit-extra-${++n}`;
        const out = await onOther(id).catch((e: unknown) => e);
        if (isFleetError(out, ErrorCode.E_FORBIDDEN)) return out;
        await fleet.client.cancel(id);
        return undefined;
      },
      20_000,
      'the active-builds limit to refuse',
    );
    expect(refused.details?.issues?.map((i) => i.path)).toEqual(['limits.maxActiveBuilds']);
    // a resubmission of an active build is not a new build: answered, not refused
    expect(await onOther('limit-1')).toMatchObject({ created: false });
    await fleet.client.cancel('limit-1');
    const again = await eventuallyValue(
      async () => onOther('limit-3').catch((e: unknown) => (isFleetError(e, ErrorCode.E_FORBIDDEN) ? undefined : Promise.reject(e))),
      20_000,
      'a slot to free up',
    );
    expect(again).toMatchObject({ created: true });
    for (const id of ['limit-2', 'limit-3']) await fleet.client.cancel(id);
  });
});

describe('fleet CLI and identity', () => {
  const cli = (args: string[], env: Record<string, string> = cliEnv(fleet)) => execa(process.execPath, [FLEET_BIN, ...args], { reject: false, env });

  it('creates a token and shows it once, lists it without its secret, and revokes it', async () => {
    const created = await cli(['tokens', 'create', '--tenant', 'payments', '--role', 'submitter', '--name', 'ci']);
    expect(created.exitCode, created.stderr).toBe(0);
    const [secret = '', note = ''] = created.stdout.split('\n');
    expect(secret).toMatch(/^flt_[0-9a-f]{8}_\S+$/);
    const id = /id ([0-9a-f]{8})/.exec(note)?.[1] ?? '';
    expect(secret.startsWith(`flt_${id}_`)).toBe(true);

    const ls = await cli(['tokens', 'ls', '--tenant', 'payments']);
    expect(ls.exitCode, ls.stderr).toBe(0);
    expect(ls.stdout).toMatch(new RegExp(`^${id}\\s+payments\\s+submitter\\s+ci\\s`, 'm'));
    const lsJson = await cli(['tokens', 'ls', '--tenant', 'payments', '--json']);
    const listed = (JSON.parse(lsJson.stdout) as Array<Record<string, unknown>>).find((t) => t.id === id);
    expect(listed).toMatchObject({ id, tenant: 'payments', role: 'submitter', name: 'ci' });
    const secretPart = secret.slice(`flt_${id}_`.length);
    for (const out of [ls.stdout, lsJson.stdout]) expect(out).not.toContain(secretPart);
    expect(listed).not.toHaveProperty('hash');
    expect((await cli(['tokens', 'ls', '--tenant', 'search'])).stdout).not.toContain(id);

    const get = (): Promise<Response> => fetch(`${fleet.coordinator.httpUrl}/v1/builds/${PAY_BUILD}`, { headers: { authorization: `Bearer ${secret}` } });
    expect((await get()).status).toBe(200);
    const revoked = await cli(['tokens', 'revoke', id]);
    expect(revoked.exitCode, revoked.stderr).toBe(0);
    expect(revoked.stdout).toContain(`revoked ${id}`);
    expect((await get()).status).toBe(401);
    expect((await cli(['tokens', 'ls', '--tenant', 'payments'])).stdout).toMatch(new RegExp(`^${id}\\s.*revoked`, 'm'));
  });

  it("tells a tenant's CLI the admin commands are not for it: E_FORBIDDEN naming the subject, exit 10", async () => {
    const env = { ...cliEnv(fleet), FLEET_NATS_NKEY: credentialsOf('tenant-payments').seedFile, FLEET_NATS_USER: 'tenant-payments' };
    const workers = await cli(['workers'], env);
    expect(workers.exitCode, workers.stderr).toBe(ExitCode.FORBIDDEN);
    expect(workers.stderr).toContain('E_FORBIDDEN');
    expect(workers.stderr).toContain(subjects.workers);
    const sneaky = await cli(['tokens', 'create', '--tenant', 'payments', '--role', 'admin', '--name', 'sneaky'], env);
    expect(sneaky.exitCode, sneaky.stderr).toBe(ExitCode.FORBIDDEN);
    expect(sneaky.stderr).toContain(subjects.tokens);
    expect((await fleet.client.tokens({ op: 'list' })).tokens.map((t) => t.name)).not.toContain('sneaky');
    // what is its own still works, and another tenant's build is not found
    const own = await cli(['status', PAY_BUILD], env);
    expect(own.exitCode, own.stderr).toBe(ExitCode.PUSHED);
    const theirs = await cli(['status', SEARCH_BUILD], env);
    expect(theirs.exitCode, theirs.stderr).toBe(ExitCode.NOT_FOUND);
  });
});

describe('audit trail', () => {
  it("records every tenant's accepted and refused requests with who, what and why, and never a build arg's value", async () => {
    const secretArg = 'npm_AUDITVALUEshouldNEVERappear0123456789';
    await payments.submit(request('audit-ok-1', 'app/payments/audit', { buildArgs: { NPM_TOKEN: secretArg } }));
    await payments.submit(request('audit-no-1', 'app/search/audit', { buildArgs: { NPM_TOKEN: secretArg } })).catch(() => undefined);
    await search.cancel('audit-ok-1').catch(() => undefined);
    // Appending never delays a request, so the last entries may land a moment after the answers.
    const entries = await eventuallyValue(
      async () => {
        const all = await auditTrail(fleet.client.nc);
        return all.some((e) => e.target === 'audit-no-1') && all.some((e) => e.target === 'audit-ok-1' && e.action === 'build.cancel') ? all : undefined;
      },
      10_000,
      'audit entries',
    );
    expect(entries).toContainEqual(expect.objectContaining({ tenant: 'payments', who: 'nats:tenant-payments', action: 'build.submit', target: 'audit-ok-1', verdict: 'accepted' }));
    expect(entries).toContainEqual(
      expect.objectContaining({ tenant: 'payments', action: 'build.submit', target: 'audit-no-1', verdict: 'refused', code: 'E_FORBIDDEN', reason: expect.stringContaining('image.repository') }),
    );
    // search's cancel of payments' build: refused as not found, recorded under search.
    expect(entries).toContainEqual(expect.objectContaining({ tenant: 'search', action: 'build.cancel', target: 'audit-ok-1', verdict: 'refused', code: 'E_NOT_FOUND' }));
    expect(entries.some((e) => e.action === 'token.create' && e.verdict === 'accepted')).toBe(true);
    expect(JSON.stringify(entries)).not.toContain(secretArg);
    expect((await auditTrail(fleet.client.nc, 'search')).every((e) => e.tenant === 'search')).toBe(true);
  });
});
