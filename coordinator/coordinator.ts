import { readFile } from 'node:fs/promises';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { consumers, streams } from '../protocol/index.ts';
import type { Logger } from '../adapters/logger.ts';
import { connectNats } from '../adapters/nats.ts';
import { loadRegistryCredentials } from '../adapters/docker-config.ts';
import { RegistryClient } from '../adapters/registry-client.ts';
import { S3Store } from '../adapters/s3-store.ts';
import { createCoordinatorMetrics, MeteredBuildStore, Readiness } from './metrics.ts';
import { RegisteredWorkers } from './registered-workers.ts';
import { compileCoordinatorConfig, type CoordinatorOptions } from './config.ts';
import { serveHttp } from './http-api.ts';
import { loadGatePolicy } from './gates/index.ts';
import { Intake } from './intake.ts';
import { loadCatalog } from './platform/catalog.ts';
import { serveNatsApi } from './nats-api.ts';
import { listWorkers } from './worker-list.ts';
import { QueueExpiry } from './queue-expiry.ts';
import { ReportProcessor } from './reports.ts';
import { ScanClient } from './scan-client.ts';
import { DeadLetters } from './dead-letters.ts';
import { sseLogs } from './sse-logs.ts';
import { ensureTopology } from './topology.ts';
import { Authenticator, CachedTokenStore, KvTokenStore, OidcVerifier, openTokenBucket } from './auth/index.ts';
import { watchedTenancy } from './tenancy/watched.ts';
import { AuditTrail } from './audit.ts';
import { allowedBasesFor } from './tenancy/allowed-bases.ts';
import { startRebuilds } from './rebuilds/index.ts';
import { readDeliveries, startNotifications } from './notifications/index.ts';
import { Rescans } from './rescans.ts';
import { BuildList } from './build-list.ts';
import type { WorkerInfo } from '../protocol/index.ts';
import { provenanceSettings } from './provenance/index.ts';

export interface Coordinator {
  httpUrl: string;
  /** Stops taking requests, lets in-flight work finish, then closes the NATS connection. */
  close(): Promise<void>;
}

export async function startCoordinator(options: CoordinatorOptions, log: Logger): Promise<Coordinator> {
  const config = compileCoordinatorConfig(options);
  const nc = await connectNats(config.natsUrl, 'fleet-coordinator', config.natsCredentials, log);
  const js = jetstream(nc);
  const readiness = new Readiness(nc);
  const topology = await ensureTopology(nc, await jetstreamManager(nc), config);
  readiness.topologyEnsured();
  const metrics = createCoordinatorMetrics();
  // a third of the workers bucket's TTL: within how long a killed worker's entry stays anyway
  const registered = new RegisteredWorkers(topology.workers, Math.min(5_000, Math.floor(config.workerTtlMs / 3)));
  const store = new MeteredBuildStore(topology.builds, js, log, metrics, registered);
  const s3 = new S3Store(config.s3);
  const expiry = new QueueExpiry(store, config, log);
  const catalog = await loadCatalog(config.platform.catalogPath);
  const gates = {
    policy: await loadGatePolicy(config.platform.policyPath),
    signingPublicKey: await readFile(config.platform.signingPublicKeyPath, 'utf8'),
    ...(config.scan === undefined ? {} : { scan: new ScanClient(nc, js, config.scan.timeoutMs, log.child({ component: 'scan-client' })) }),
  };
  const tenancy = await watchedTenancy(config.platform.tenancyPath, log);
  // one watch of the builds bucket serves the console's list and intake's per-tenant limit
  // and one of the workers bucket serves the list's builders and the claim check's registered workers
  const buildList = await BuildList.watch(topology.builds, topology.workers, log, (entry) => registered.announced(entry));
  const intake = new Intake({
    config,
    catalog,
    store,
    s3,
    js,
    log,
    onQueued: (r) => expiry.track(r),
    tenancy: {
      current: tenancy.current,
      activeBuilds: (t) => buildList.activeCount(t),
      bases: (t) => allowedBasesFor(t, tenancy.current(), gates.policy.bases, config.registry.host),
    },
  });
  const tokens = new CachedTokenStore(new KvTokenStore(await openTokenBucket(topology.resources)));
  const oidc = config.platform.oidcPath === undefined ? undefined : await OidcVerifier.create(JSON.parse(await readFile(config.platform.oidcPath, 'utf8')));
  const authenticator = new Authenticator(oidc === undefined ? { tokens } : { tokens, oidc });
  await expiry.rearm(topology.builds);

  const jsm = await jetstreamManager(nc);
  const deadLetters = new DeadLetters(jsm, js, store, intake, log);
  const audit = new AuditTrail(js, log);
  const notifications = await startNotifications(nc, topology.resources, store, (tenant) => tenancy.current().hookOf(tenant), config.buildsMaxAgeMs, log);
  const rebuilds = await startRebuilds(nc, topology.resources, config.rebuilds, {
    submit: (raw, caller) => intake.submit(raw, caller),
    record: async (id) => (await store.get(id))?.record ?? null,
    publish: (event) => store.publish(event),
    registry: new RegistryClient({ ...config.registry, credentials: config.registry.authFile === undefined ? undefined : (await loadRegistryCredentials(config.registry.authFile)).get(config.registry.host) }),
    registryHost: config.registry.host,
    notify: async (tenant, subject, data, id) => void (await notifications.notifier.notify(tenant, 'dev.fleet.image.rebuilt', subject, data, { id })),
  }, log);
  const workers = (): Promise<WorkerInfo[]> => listWorkers(jsm, topology.workers);
  const subs = serveNatsApi(nc, intake, store, registered, workers, deadLetters, tokens, audit, config, metrics, log);
  const http = await serveHttp(config, intake, store, sseLogs(nc, js, s3, store), authenticator, audit, log, {
    metrics: async () => ({ contentType: metrics.registry.contentType, body: await metrics.registry.metrics() }),
    ready: () => readiness.ready,
  }, {
    builds: buildList,
    deadLetters,
    notifications: (tenant) => readDeliveries(nc, tenant),
    workers,
  }, rebuilds);

  const stop = new AbortController();
  const credentials = config.registry.authFile === undefined ? undefined : (await loadRegistryCredentials(config.registry.authFile)).get(config.registry.host);
  // Released images are rescanned when the scanners' DB moves (only where there is a scanner pool).
  const scanClient = gates.scan;
  const rescans = scanClient === undefined ? undefined : await Rescans.open(topology.resources, { buildsKv: topology.builds, store, registry: new RegistryClient({ ...config.registry, credentials }), scan: scanClient, policy: gates.policy, js, metrics: metrics.registry }, { registryHost: config.registry.host, insecure: config.registry.insecure, perMinute: config.scan?.rescanPerMinute ?? 30 }, log);
  if (scanClient !== undefined && rescans !== undefined) scanClient.onDbBuilt = (dbBuilt) => rescans.observeDb(dbBuilt);
  const rescanApi = rescans?.serve(nc);
  const registry = new RegistryClient({ ...config.registry, credentials });
  const reports = new ReportProcessor(config, registry, gates, store, js, log, await provenanceSettings(config, registry, registered, log, (when) => metrics.sbomLayerReads.inc({ when })));
  const reportLoop = reports
    .run(await js.consumers.get(streams.builds, consumers.reports), stop.signal)
    .catch((e: unknown) => log.error({ err: e }, 'report loop ended'));
  const deadLetterLoop = deadLetters
    .run(await js.consumers.get(streams.advisories, consumers.deadLetters), stop.signal)
    .catch((e: unknown) => log.error({ err: e }, 'dead letter loop ended'));

  log.info({ http: http.url, nats: config.natsUrl }, 'coordinator ready');
  return {
    httpUrl: http.url,
    async close() {
      // Phase 1: take no new work.
      readiness.close();
      await new Promise<void>((resolve) => http.server.close(() => resolve()));
      await Promise.all(subs.map((s) => s.drain()));
      await rescanApi?.drain();
      await rescans?.close();
      stop.abort();
      expiry.stop();
      tenancy.close();
      buildList.close();
      await Promise.all([reportLoop, deadLetterLoop]);
      await rebuilds?.close();
      await notifications.close();
      // Phase 2: flush and close the connection.
      await nc.drain();
      s3.close();
      log.info('coordinator stopped');
    },
  };
}
