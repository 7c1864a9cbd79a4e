import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { FleetClient } from '../../client/index.ts';
import { startCoordinator, type Coordinator, type CoordinatorOptions } from '../../coordinator/index.ts';
import { publishPlatformImages } from '../../images/official/index.ts';
import type { RegistryCredentials } from '../../adapters/docker-config.ts';
import type { Logger } from '../../adapters/logger.ts';
import type { WorkerOptions } from '../../worker/index.ts';
import { buildUser, freePort } from '../../node/host.ts';
import { startNatsServer, type NatsServer } from './nats-server.ts';
import { startNatsCluster } from './nats-cluster.ts';
import { startRegistry, type Registry } from './registry.ts';
import { startS3Server, type S3Server } from './s3-server.ts';
import { fillSharedImageStore } from '../../node/shared-image-store.ts';
import { fillBuildkitSeed } from '../../worker/builders/buildkit-seed.ts';
import { spawnWorker, type WorkerProcess } from './worker-process.ts';
import { startScanner, type ScannerOptions } from '../../scanner/scanner.ts';
import type { HarborOptions } from '../../scanner/harbor.ts';
import type { TrivyOptions } from '../../scanner/trivy.ts';
import { issueNatsUsers, renderAuthorization } from '../../node/nats-authorization.ts';
import { makeNatsTls } from './nats-tls.ts';
import type { NatsCredentials } from '../../adapters/nats.ts';
import { PLATFORM_TENANT } from '../../protocol/index.ts';
import type { TenancyConfig } from '../../coordinator/index.ts';

export interface LocalFleetOptions {
  /** defaults to a fresh temp dir, removed on stop */
  stateDir?: string;
  workers?: number;
  pool?: string;
  /** `pools` adds pools beside the workers' own (e.g. one no worker serves) */
  coordinator?: Partial<Pick<CoordinatorOptions, 'jobAckWaitMs' | 'maxDeliver' | 'pools' | 'workerTtlMs' | 'rebuilds'>>;
  worker?: Partial<Pick<WorkerOptions, 'heartbeatMs' | 'drainGraceMs' | 'secretsDir' | 'maskPatterns' | 'logs' | 'announceMs' | 'pool' | 'builder' | 'sharedImageStore' | 'registryAuthFile' | 'metricsPort' | 'maxBuilds' | 'kanikoImage'>>;
  /**
   * Fill a node-wide read-only store with the platform images and give it to every worker, as a
   * real node would (fresh workers then build without pulling the bases). Off by default: it
   * adds about 10 s to a fleet's start.
   */
  sharedImageStore?: boolean;
  /**
   * With the shared store, also fill the node's BuildKit seed root (the official images unpacked,
   * worker/builders/buildkit-seed.ts): fresh BuildKit workers then start with the bases unpacked. Off by
   * default: it adds about 15 s to a fleet's start.
   */
  buildkitSeed?: boolean;
  /** a registry that takes only credentials (htpasswd), handed to the coordinator and workers as a docker config file */
  registryAuth?: boolean;
  /** tenants (see coordinator/tenancy): each gets a NATS user; the fleet's own client is the platform's admin */
  tenants?: TenancyConfig['tenants'];
  /** the platform tenant's settings in the tenancy file (its notification webhook) */
  platform?: TenancyConfig['platform'];
  /** OIDC issuers the HTTP API accepts (see coordinator/auth/oidc.ts), written where the coordinator reads them */
  oidc?: unknown;
  /** run NATS with TLS (a throwaway CA), as any server off loopback must be; every component verifies it */
  natsTls?: boolean;
  /** serve nats-server's HTTP monitoring (/jsz: what KEDA's scaler reads) on a loopback port: `nats.monitoringUrl` */
  natsMonitoring?: boolean;
  /**
   * run NATS as a JetStream cluster of this many servers with the Kubernetes manifests' config
   * (deploy/local/nats-cluster.ts; `nats` is then a NatsCluster) and every stream and bucket at
   * that many replicas; not with natsTls
   */
  natsCluster?: number;
  /**
   * Vulnerability scanners (scanner/), each on the fleet's `scanner` NATS user. 0, the default,
   * means no scanner pool: the coordinator reports the vulnerabilities gate as skipped.
   */
  scanners?: number;
  /** the scanners' grype DB (a GRYPE_DB_CACHE_DIR) and how long the gate waits for a report; given without scanners, no scanner answers */
  scan?: {
    dbDir?: string;
    /** keep dbDir current from a mirror of grype's DB distribution (scanner/grype-db.ts): each scanner updates at start and every everyMs, and announces a new DB */
    dbUpdate?: ScannerOptions['dbUpdate'];
    /** a grype DB built longer ago is refused (default grype's 120 h) */
    dbMaxAgeHours?: number;
    /** scan through a Harbor scanner adapter instead of grype */
    harbor?: HarborOptions;
    /** scan with trivy (its DB in trivy.cacheDir) instead of grype */
    trivy?: TrivyOptions;
    timeoutMs?: number;
    rescanPerMinute?: number;
    /** the scan job consumer's ack wait, and how often a scanner says a scan is in progress */
    ackWaitMs?: number;
    workingEveryMs?: number;
  };
  /**
   * The registry notifies the coordinator of every push (POST /v1/registry/events with a platform
   * token of its own), as a production registry would: base changes start rebuild waves at once.
   * The coordinator's HTTP port is then fixed for the fleet's life (the registry's config names it).
   */
  registryNotifications?: boolean;
  /** a gate policy file in place of images/platform/gate-policy.json */
  gatePolicyPath?: string;
}

export interface LocalFleet {
  stateDir: string;
  nats: NatsServer;
  registry: Registry;
  s3: S3Server;
  coordinator: Coordinator;
  workers: WorkerProcess[];
  /** the signed official and platform images in the registry: reference → digest */
  officialImages: Record<string, string>;
  /** the platform admin's client */
  client: FleetClient;
  /** NATS credentials of each fleet user (admin, coordinator, worker-<pool>, tenant-<name>) */
  natsCredentials: Record<string, NatsCredentials>;
  /** the tenancy file the coordinator watches (rewrite it to change tenants live) */
  tenancyPath: string;
  /** an HTTP API token for the platform admin */
  adminToken: string;
  addWorker(overrides?: LocalFleetOptions['worker']): Promise<WorkerProcess>;
  /** a second coordinator replica on the same NATS (stopped with the fleet) */
  addCoordinator(): Promise<Coordinator>;
  /** what the fleet's coordinators run with (a replica started elsewhere, e.g. from an image, takes the same) */
  coordinatorOptions: CoordinatorOptions;
  /** stops the coordinator, runs `whileDown`, starts a new one (same options, new HTTP port) */
  restartCoordinator(whileDown?: () => Promise<void>): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A whole fleet on this machine, every part real: nats-server with JetStream, a registry, the
 * coordinator (in this process) and rootless workers (their own processes, as the build user).
 */
export async function startLocalFleet(opts: LocalFleetOptions, log: Logger): Promise<LocalFleet> {
  const ownDir = opts.stateDir === undefined;
  const stateDir = opts.stateDir ?? (await mkdtemp(join(tmpdir(), 'fleet-')));
  await mkdir(stateDir, { recursive: true });
  // Workers run as another user and must traverse into their own subdirectory.
  await chmod(stateDir, 0o755);
  const pool = opts.pool ?? 'default';
  const cleanups: Array<() => Promise<void>> = [];
  const stop = async (): Promise<void> => {
    for (const c of cleanups.reverse()) await c().catch((e: unknown) => log.warn({ err: e }, 'cleanup step failed'));
    if (ownDir) await rm(stateDir, { recursive: true, force: true });
  };
  try {
    const pools = [...new Set([pool, ...(opts.coordinator?.pools ?? [])])];
    const scanners = opts.scanners ?? 0;
    if (scanners > 0 && opts.scan?.dbDir === undefined && opts.scan?.harbor === undefined && opts.scan?.trivy === undefined) throw new Error('scanners need scan.dbDir (a grype DB cache dir), scan.trivy or scan.harbor');
    const tenancyPath = join(stateDir, 'tenancy.json');
    await writeFile(tenancyPath, JSON.stringify({ tenants: opts.tenants ?? [], ...(opts.platform === undefined ? {} : { platform: opts.platform }) }, null, 2));
    const oidcPath = opts.oidc === undefined ? undefined : join(stateDir, 'oidc.json');
    if (oidcPath !== undefined) await writeFile(oidcPath, JSON.stringify(opts.oidc, null, 2));
    const users = await issueNatsUsers(join(stateDir, 'nats-credentials'), [
      { kind: 'admin' },
      { kind: 'coordinator' },
      ...pools.map((p) => ({ kind: 'worker' as const, pool: p })),
      ...(opts.tenants ?? []).map((t) => ({ kind: 'tenant' as const, tenant: t.name })),
      // (a `scan` without in-process scanners still gets the user: a test may run scanner processes of its own)
      ...(scanners > 0 || opts.scan !== undefined ? [{ kind: 'scanner' as const }] : []),
    ]);
    const tls = opts.natsTls === true ? await makeNatsTls(join(stateDir, 'nats-tls')) : undefined;
    const natsCredentials = Object.fromEntries(users.map((u) => [u.credentials.user, tls === undefined ? u.credentials : { ...u.credentials, tlsCaFile: tls.caFile }]));
    const credentialsOf = (user: string): NatsCredentials => {
      const found = natsCredentials[user];
      if (found === undefined) throw new Error(`no NATS user ${user} in this fleet (a worker's pool must be one of the coordinator's pools)`);
      return found;
    };
    // Workers run as the build user and must read their pool's seed, and only that file.
    const runAs = await buildUser();
    await chmod(join(stateDir, 'nats-credentials'), 0o711);
    if (runAs.switchUser) for (const p of pools) await chown(credentialsOf(`worker-${p}`).seedFile, runAs.uid, runAs.gid);
    if (opts.natsCluster !== undefined && tls !== undefined) throw new Error('natsCluster runs without natsTls');
    const nats =
      opts.natsCluster === undefined
        ? await startNatsServer(join(stateDir, 'nats'), { authorization: renderAuthorization(users), monitoring: opts.natsMonitoring === true, ...(tls === undefined ? {} : { tls }) })
        : await startNatsCluster(join(stateDir, 'nats'), users, opts.natsCluster);
    cleanups.push(() => nats.stop());
    const registry = await startRegistry(join(stateDir, 'registry'), { auth: opts.registryAuth === true });
    cleanups.push(() => registry.stop());
    const authFile = registry.credentials === undefined ? undefined : await writeDockerConfig(join(stateDir, 'registry-auth.json'), registry.host, registry.credentials);
    const officialImages = await publishPlatformImages({ host: registry.host, insecure: true, credentials: registry.credentials }, { authFile });
    const sharedImageStore = opts.sharedImageStore === true ? await fillSharedImageStore(join(stateDir, 'shared-images'), registry.host, Object.keys(officialImages), authFile) : undefined;
    if (sharedImageStore !== undefined && opts.buildkitSeed === true) {
      await fillBuildkitSeed(dirname(sharedImageStore), { host: registry.host, insecure: true }, Object.keys(officialImages).filter((r) => r.startsWith('official/')), authFile);
    }
    const s3 = await startS3Server(join(stateDir, 's3'));
    cleanups.push(() => s3.stop());
    const coordinatorOptions = {
      natsUrl: nats.url,
      natsCredentials: credentialsOf('coordinator'),
      platform: { tenancyPath, ...(oidcPath === undefined ? {} : { oidcPath }), ...(opts.gatePolicyPath === undefined ? {} : { policyPath: opts.gatePolicyPath }) },
      // `scan` without scanners: the coordinator expects a scanner pool that never answers (a fault to test)
      ...(scanners > 0 || opts.scan !== undefined ? { scan: { timeoutMs: opts.scan?.timeoutMs ?? 5 * 60_000, ...(opts.scan?.rescanPerMinute === undefined ? {} : { rescanPerMinute: opts.scan.rescanPerMinute }), ...(opts.scan?.ackWaitMs === undefined ? {} : { ackWaitMs: opts.scan.ackWaitMs }) } } : {}),
      // The registry's notifications name the coordinator's port, so it must outlive a coordinator restart.
      http: { host: '127.0.0.1', port: opts.registryNotifications === true ? await freePort() : 0 },
      registry: { host: registry.host, insecure: true, ...(authFile === undefined ? {} : { authFile }) },
      s3: s3.options,
      ...(opts.natsCluster === undefined ? {} : { jetstreamReplicas: Math.min(opts.natsCluster, 3) }),
      ...opts.coordinator,
      pools,
    };
    let coordinator: Coordinator | null = await startCoordinator(coordinatorOptions, log.child({ component: 'coordinator' }));
    cleanups.push(() => coordinator?.close() ?? Promise.resolve());
    const restartCoordinator = async (whileDown: () => Promise<void> = () => Promise.resolve()): Promise<void> => {
      await coordinator?.close();
      coordinator = null;
      await whileDown();
      coordinator = await startCoordinator(coordinatorOptions, log.child({ component: 'coordinator' }));
    };
    const addCoordinator = async (): Promise<Coordinator> => {
      const replica = await startCoordinator(coordinatorOptions, log.child({ component: 'coordinator-replica' }));
      cleanups.push(() => replica.close());
      return replica;
    };
    for (let i = 0; i < scanners; i++) {
      const scanner = await startScanner(
        { natsUrl: nats.url, natsCredentials: credentialsOf('scanner'), scannerId: `s${i + 1}-${process.pid}`, ...scannerBackend(opts.scan), ...(opts.scan?.workingEveryMs === undefined ? {} : { workingEveryMs: opts.scan.workingEveryMs }) },
        log.child({ component: 'scanner' }),
      );
      cleanups.push(() => scanner.stop());
    }
    const workersDir = join(stateDir, 'workers');
    await mkdir(workersDir, { recursive: true, mode: 0o755 });
    const workers: WorkerProcess[] = [];
    // Never reused, even after workers are removed from the list: ids name state dirs and KV keys.
    let spawned = 0;
    const addWorker = async (overrides: LocalFleetOptions['worker'] = {}): Promise<WorkerProcess> => {
      const workerPool = overrides.pool ?? opts.worker?.pool ?? pool;
      const w = await spawnWorker(
        { natsUrl: nats.url, natsCredentials: credentialsOf(`worker-${workerPool}`), s3: s3.options, pool, workerId: `w${++spawned}-${process.pid}`, insecureRegistries: [registry.host], ...(sharedImageStore === undefined ? {} : { sharedImageStore }), ...(authFile === undefined ? {} : { registryAuthFile: authFile }), ...opts.worker, ...overrides },
        workersDir,
      );
      workers.push(w);
      return w;
    };
    cleanups.push(async () => {
      await Promise.all(workers.map((w) => w.stop()));
    });
    for (let i = 0; i < (opts.workers ?? 1); i++) await addWorker();
    const client = await FleetClient.connect(nats.url, credentialsOf('admin'), s3.options);
    cleanups.push(() => client.close());
    const adminToken = (await client.tokens({ op: 'create', tenant: PLATFORM_TENANT, role: 'admin', name: 'local admin' })).token ?? '';
    if (opts.registryNotifications === true) {
      // A reader of the platform tenant: a notification is only a hint the coordinator checks against the registry.
      const notifierToken = (await client.tokens({ op: 'create', tenant: PLATFORM_TENANT, role: 'reader', name: 'registry notifier' })).token ?? '';
      await registry.notifyTo(`${coordinator.httpUrl}/v1/registry/events`, notifierToken);
    }
    return {
      stateDir, nats, registry, s3, workers, officialImages, client, natsCredentials, tenancyPath, adminToken, addWorker, addCoordinator, coordinatorOptions, restartCoordinator, stop,
      get coordinator(): Coordinator {
        if (coordinator === null) throw new Error('the coordinator is down (restartCoordinator is running)');
        return coordinator;
      },
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** A scanner's backend from the fleet's scan options: a Harbor adapter, trivy, else grype on dbDir (kept current from dbUpdate's mirror when given). */
function scannerBackend(scan: LocalFleetOptions['scan']): Pick<ScannerOptions, 'dbDir' | 'dbUpdate' | 'dbMaxAgeHours' | 'harbor' | 'trivy'> {
  if (scan?.harbor !== undefined) return { harbor: scan.harbor };
  if (scan?.trivy !== undefined) return { trivy: scan.trivy };
  return {
    dbDir: scan?.dbDir ?? '',
    ...(scan?.dbUpdate === undefined ? {} : { dbUpdate: scan.dbUpdate }),
    ...(scan?.dbMaxAgeHours === undefined ? {} : { dbMaxAgeHours: scan.dbMaxAgeHours }),
  };
}

/** A docker config.json holding one registry's credentials, readable by the build user only. */
async function writeDockerConfig(file: string, host: string, credentials: RegistryCredentials): Promise<string> {
  const auth = Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64');
  await writeFile(file, JSON.stringify({ auths: { [host]: { auth } } }), { mode: 0o600 });
  const user = await buildUser();
  if (user.switchUser) await chown(file, user.uid, user.gid);
  return file;
}
