import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { jetstream, type Consumer } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { buckets, consumers, streams } from '../protocol/index.ts';
import type { Logger } from '../adapters/logger.ts';
import { connectNats } from '../adapters/nats.ts';
import { builderToolPath } from '../adapters/environment.ts';
import { S3Store } from '../adapters/s3-store.ts';
import type { RegistryClient } from '../adapters/registry-client.ts';
import { createBuilder } from './builders/index.ts';
import { compileWorkerConfig, type WorkerConfig, type WorkerOptions } from './config.ts';
import { writeContainersConfig } from '../node/containers-config.ts';
import { seedBlobInfoCache } from '../node/shared-image-store.ts';
import { buildkitSeedRoot } from './builders/buildkit-seed.ts';
import { Announcer } from './announcer.ts';
import { JobRunner } from './job-runner.ts';
import { WorkerLifecycle, type WorkerState } from './lifecycle.ts';
import { natsPorts } from './ports.ts';
import { verifiedDigest } from './official-bases.ts';
import { RegistryAccess } from './registry-access.ts';
import { createWorkerMetrics, meteredPorts, serveWorkerMetrics } from './metrics.ts';

// Short pulls: an idle worker notices a drain within this time.
const PULL_EXPIRES_MS = 2_000;

export interface Worker {
  readonly config: WorkerConfig;
  /** Resolves when the worker has stopped (after drain or abort). */
  readonly done: Promise<void>;
  /** the worker's one state (what `fleet workers` shows) */
  readonly state: WorkerState;
  /** true once a drain's grace ran out and the current build was handed back */
  readonly handedBack: boolean;
  /**
   * Two-phase stop: stop pulling at once; let the current build finish within the grace,
   * then cancel it (its job is redelivered to another worker).
   */
  drain(graceMs?: number): Promise<void>;
}

export async function startWorker(options: WorkerOptions, log: Logger): Promise<Worker> {
  const config = compileWorkerConfig(options);
  const wlog = log.child({ workerId: config.workerId, pool: config.pool });
  await mkdir(join(config.stateDir, 'scratch'), { recursive: true, mode: 0o700 });
  const registries = await RegistryAccess.open(config);
  const containers = await writeContainersConfig(config.stateDir, config.insecureRegistries, { sharedImageStore: config.sharedImageStore });
  const containersEnv = { ...containers.env, ...registries.builderEnv };
  if (config.sharedImageStore !== undefined) await seedBlobInfoCache(config.sharedImageStore, containers.env.HOME, wlog);
  const nc = await connectNats(config.natsUrl, `fleet-worker-${config.workerId}`, config.natsCredentials, wlog);
  const js = jetstream(nc);
  const s3 = new S3Store(config.s3);
  const lifecycle = new WorkerLifecycle();
  const metrics = createWorkerMetrics({ pool: config.pool, builder: config.builder });
  lifecycle.onChange((state) => metrics.setState(state.phase));
  const metricsServer = config.metricsPort === undefined
    ? null
    : await serveWorkerMetrics(config.metricsPort, metrics, () => lifecycle.state.phase !== 'stopped' && lifecycle.state.phase !== 'failed', wlog);

  let announcer: Announcer | null = null;
  let stopBuilder = (): Promise<void> => Promise.resolve();
  const run = async (): Promise<void> => {
    const consumer = await waitForConsumer(js, config.pool, lifecycle.pulling, wlog);
    if (consumer === null) return;
    const maxDeliver = (await consumer.info(true)).config.max_deliver ?? 1;
    const builder = createBuilder({
      kind: config.builder,
      // The cache bin dir holds the builders the bootstrap builds from source (buildkitd, buildctl, buildah).
      env: { PATH: builderToolPath(), ...containersEnv },
      runNetwork: config.runNetwork,
      buildkitNetwork: config.buildkitNetwork,
      ...(config.sharedImageStore === undefined ? {} : { buildkitSeed: buildkitSeedRoot(dirname(config.sharedImageStore)) }),
      kanikoNetwork: config.kanikoNetwork,
      stateDir: config.stateDir,
      insecureRegistries: config.insecureRegistries,
      resolveBuilderImage: (host, signal) => verifiedBuilderImage(config, registries.client(host), signal),
      ...(config.registryPullAuthFile === undefined ? {} : { pullAuthFile: config.registryPullAuthFile }),
      limits: config.limits,
      signingPublicKeyPath: config.signingPublicKeyPath,
      registry: (host) => registries.client(host),
      log: wlog,
    });
    stopBuilder = () => builder.stop?.() ?? Promise.resolve();
    const kvm = new Kvm(nc);
    const builds = await kvm.open(buckets.builds);
    const a = new Announcer(await kvm.open(buckets.workers), { workerId: config.workerId, pool: config.pool, builder: builder.name, version: await packageVersion() }, config.announceMs, wlog);
    announcer = a;
    lifecycle.onChange((state) => a.set(state.phase, 'buildId' in state ? state.buildId : undefined));
    await a.start();
    lifecycle.ready();
    const ports = meteredPorts(natsPorts({ config, nc, js, s3, builds, builder, registry: (host) => registries.client(host), lifecycle, log: wlog }), metrics);
    const runner = new JobRunner(config, ports, maxDeliver, wlog);
    // Counted when a build starts, not per message: a claim refused (a duplicate delivery, another
    // worker's build) is not one of this worker's builds.
    let started = 0;
    lifecycle.onChange((state) => {
      if (state.phase === 'building') started += 1;
    });
    wlog.info({ builder: builder.name, maxDeliver }, 'worker ready');
    while (!lifecycle.pulling.aborted) {
      let msg;
      try {
        msg = await consumer.next({ expires: PULL_EXPIRES_MS });
      } catch (e) {
        if (lifecycle.pulling.aborted) break;
        wlog.warn({ err: e }, 'pull failed; retrying');
        await sleep(1_000);
        continue;
      }
      if (msg === null) continue;
      // One job's unexpected failure must not end the worker: the job goes back to the queue.
      await runner.handle(msg, lifecycle.building).catch((e: unknown) => {
        wlog.error({ err: e, subject: msg.subject }, 'job handling failed; handing it back');
        msg.nak(1_000);
      });
      if (config.maxBuilds !== undefined && started >= config.maxBuilds) {
        wlog.info({ maxBuilds: config.maxBuilds }, 'build budget spent; stopping');
        lifecycle.drain();
      }
    }
  };

  const done = run()
    .then(
      () => lifecycle.stopped(),
      (e: unknown) => {
        wlog.error({ err: e }, 'worker loop failed');
        lifecycle.failed(e instanceof Error ? e.message : String(e));
      },
    )
    .finally(async () => {
      await announcer?.stop();
      await stopBuilder().catch((e: unknown) => wlog.warn({ err: e }, 'could not stop the builder'));
      await containers.close();
      await nc.drain().catch(() => undefined);
      s3.close();
      await metricsServer?.close();
      wlog.info('worker stopped');
    });

  return {
    config,
    done,
    get state() {
      return lifecycle.state;
    },
    get handedBack() {
      return lifecycle.handedBack;
    },
    async drain(graceMs = config.drainGraceMs) {
      wlog.info({ graceMs }, 'draining');
      lifecycle.drain();
      const timer = setTimeout(() => lifecycle.handOver(), graceMs);
      await done;
      clearTimeout(timer);
    },
  };
}

async function waitForConsumer(js: ReturnType<typeof jetstream>, pool: string, signal: AbortSignal, log: Logger): Promise<Consumer | null> {
  for (let warned = false; !signal.aborted; ) {
    try {
      return await js.consumers.get(streams.jobs, consumers.pool(pool));
    } catch (e) {
      if (!warned) log.warn({ err: e }, 'pool consumer not there yet (is the coordinator up?); waiting');
      warned = true;
      await sleep(500);
    }
  }
  return null;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The kaniko image in the job's registry, pinned to the digest whose platform signature checks out. */
async function verifiedBuilderImage(config: WorkerConfig, registry: RegistryClient, signal: AbortSignal): Promise<string> {
  const colon = config.kanikoImage.lastIndexOf(':');
  const repository = config.kanikoImage.slice(0, colon);
  const digest = await verifiedDigest(registry, repository, config.kanikoImage.slice(colon + 1), await readFile(config.signingPublicKeyPath, 'utf8'), signal);
  return `${registry.endpoint.host}/${repository}@${digest}`;
}

async function packageVersion(): Promise<string> {
  return (JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}
