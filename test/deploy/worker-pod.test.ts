import { createHash } from 'node:crypto';
import { access, chmod, chown, constants, mkdir, mkdtemp, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cacheDir } from '../../adapters/environment.ts';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import { buildApp, imageContext } from '../../images/fleet/app-context.ts';
import { buildUserContainers, type BuildUserContainers } from '../../node/build-user-containers.ts';
import { buildUser } from '../../node/host.ts';
import { eventually } from '../helpers/eventually.ts';
import { fixture, startTestFleet } from '../helpers/fleet.ts';

/**
 * The worker images as pods run them: each pool's Deployment (deploy/kubernetes/base/workers/
 * <pool>.yaml) translated flag by flag to rootless podman as the build user, whose own user
 * namespace (65,536 subordinate ids) stands in for the pod's (hostUsers: false), connected to a
 * real test fleet, building a sample app with the pool's builder nested inside, one build, exit 0:
 * buildah (chroot isolation), BuildKit (rootlesskit in the pod's network namespace,
 * `buildkitNetwork: pod`, and runc's process sandbox over an unmasked /proc) and kaniko (the
 * signed kaniko image under rootless podman in the pod, `kanikoNetwork: pod`: the pod's network
 * and UTS namespaces, a fresh /proc over an unmasked one).
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** pool name = builder = manifest file; the image is `worker-<pool>` */
const POOLS = ['buildah', 'buildkit', 'kaniko'] as const;
type Pool = (typeof POOLS)[number];
const manifestOf = (pool: Pool): string => join(ROOT, `deploy/kubernetes/base/workers/${pool}.yaml`);

// ---- the manifest, read field by field (only what a container runtime is told) ----

const Capabilities = z.object({ add: z.array(z.string()).optional(), drop: z.array(z.string()).optional() });
const ContainerSecurity = z.object({
  runAsUser: z.number().int().optional(),
  runAsGroup: z.number().int().optional(),
  runAsNonRoot: z.boolean().optional(),
  allowPrivilegeEscalation: z.boolean().optional(),
  privileged: z.boolean().optional(),
  readOnlyRootFilesystem: z.boolean().optional(),
  procMount: z.enum(['Default', 'Unmasked']).optional(),
  capabilities: Capabilities.optional(),
  seccompProfile: z.object({ type: z.enum(['RuntimeDefault', 'Unconfined', 'Localhost']) }).optional(),
  appArmorProfile: z.object({ type: z.enum(['RuntimeDefault', 'Unconfined', 'Localhost']) }).optional(),
});
const PodSecurity = ContainerSecurity.omit({ allowPrivilegeEscalation: true, privileged: true, readOnlyRootFilesystem: true, procMount: true, capabilities: true }).extend({
  fsGroup: z.number().int().optional(),
});
const Container = z.object({
  name: z.string(),
  command: z.array(z.string()),
  args: z.array(z.string()).default([]),
  env: z.array(z.object({ name: z.string(), value: z.string() })).default([]),
  securityContext: ContainerSecurity.default({}),
  volumeMounts: z.array(z.object({ name: z.string(), mountPath: z.string(), readOnly: z.boolean().optional() })).default([]),
});
const PodSpec = z.object({
  hostUsers: z.boolean().optional(),
  hostNetwork: z.boolean().optional(),
  hostPID: z.boolean().optional(),
  hostIPC: z.boolean().optional(),
  securityContext: PodSecurity.default({}),
  containers: z.array(Container).min(1),
});
const Manifest = z.array(z.looseObject({ kind: z.string(), metadata: z.object({ name: z.string() }) }));
type PodSpec = z.infer<typeof PodSpec>;

async function readManifest(pool: Pool): Promise<{ pod: PodSpec; workerJson: Record<string, unknown> }> {
  // python3-yaml, as test/deploy/kubernetes.test.ts reads the manifests
  const py = 'import json,sys,yaml; print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d]))';
  const docs = Manifest.parse(JSON.parse((await execa('/usr/bin/python3', ['-c', py], { input: await readFile(manifestOf(pool), 'utf8') })).stdout));
  const deployment = z.object({ spec: z.object({ template: z.object({ spec: PodSpec }) }) }).parse(docs.find((d) => d.kind === 'Deployment'));
  const config = z.object({ data: z.object({ 'worker.json': z.string() }) }).parse(docs.find((d) => d.kind === 'ConfigMap'));
  return { pod: deployment.spec.template.spec, workerJson: z.record(z.string(), z.unknown()).parse(JSON.parse(config.data['worker.json'])) };
}

/**
 * The pod's security settings as podman flags, each one the runtime's meaning of the field (what
 * containerd/CRI-O do with it). Throws on a field this translation does not know how to honour,
 * so a manifest change that the test cannot reproduce fails here instead of passing unchecked.
 */
function podmanSecurityFlags(pod: PodSpec, container: z.infer<typeof Container>): string[] {
  if (pod.hostUsers !== false) throw new Error('the worker pod must have its own user namespace (hostUsers: false): rootless podman stands in for it');
  if (pod.hostNetwork === true || pod.hostPID === true || pod.hostIPC === true) throw new Error('host namespaces are not translated');
  const sc = { ...pod.securityContext, ...container.securityContext };
  if (sc.privileged === true) throw new Error('privileged is never translated');
  const uid = sc.runAsUser;
  if (uid === undefined) throw new Error('runAsUser must be set (the image user is not assumed)');
  if (sc.runAsNonRoot === true && uid === 0) throw new Error('runAsNonRoot with uid 0');
  const flags = ['--user', `${uid}:${sc.runAsGroup ?? 0}`];
  // the kubelet adds fsGroup to the container's supplementary groups
  if (pod.securityContext.fsGroup !== undefined) flags.push('--group-add', String(pod.securityContext.fsGroup));
  for (const c of sc.capabilities?.drop ?? []) flags.push(`--cap-drop=${c.toLowerCase()}`);
  for (const c of sc.capabilities?.add ?? []) flags.push(`--cap-add=${c.toLowerCase()}`);
  if (sc.allowPrivilegeEscalation === false) flags.push('--security-opt', 'no-new-privileges');
  if (sc.readOnlyRootFilesystem === true) flags.push('--read-only');
  if (sc.procMount === 'Unmasked') flags.push('--security-opt', 'unmask=ALL');
  // RuntimeDefault is the runtime's default profile: podman's own, the one CRI-O also ships
  if (sc.seccompProfile?.type === 'Unconfined') flags.push('--security-opt', 'seccomp=unconfined');
  if (sc.seccompProfile?.type === 'Localhost') throw new Error('a Localhost seccomp profile is not translated');
  if (sc.appArmorProfile?.type === 'Unconfined') flags.push('--security-opt', 'apparmor=unconfined');
  for (const e of container.env) flags.push('--env', `${e.name}=${e.value}`);
  return flags;
}

// ---- the image: built by the fleet once per source state, kept as an OCI archive ----

/** Everything the worker image is made of (app-context.ts): the compiled sources, pins, Dockerfile, Node. */
async function imageKey(): Promise<string> {
  const tsconfig = await readFile(join(ROOT, 'tsconfig.build.json'), 'utf8');
  const include = z.array(z.string()).parse(JSON.parse(tsconfig.replace(/^\s*\/\/.*$/gm, '')).include);
  const paths = [...include, 'package.json', 'package-lock.json', 'scripts/versions.env', 'images/platform', 'images/fleet'];
  const files = (await execa('git', ['ls-files', '-z', '--', ...paths], { cwd: ROOT })).stdout.split('\0').filter((f) => f !== '').sort();
  const h = createHash('sha256').update(process.version);
  for (const f of files) {
    const body = await readFile(join(ROOT, f)).catch(() => Buffer.alloc(0));
    h.update(f).update('\0').update(body).update('\0');
  }
  return h.digest('hex').slice(0, 16);
}

interface ImageArchive {
  path: string;
  /** seconds the fleet took to build it this run; null when it came from the cache */
  builtInSeconds: number | null;
}

async function workerImage(fleet: LocalFleet, dir: string, pool: Pool): Promise<ImageArchive> {
  const name = `worker-${pool}` as const;
  // the bootstrap's cache when we may write there (root, CI), else one in the temp dir
  let cache = join(cacheDir(), 'test-images');
  try {
    await mkdir(cache, { recursive: true, mode: 0o755 });
    await access(cache, constants.W_OK);
  } catch {
    cache = join(tmpdir(), 'fleet-test-images');
    await mkdir(cache, { recursive: true, mode: 0o755 });
  }
  const path = join(cache, `${name}-${await imageKey()}.oci.tar`);
  if (await stat(path).then(() => true, () => false)) return { path, builtInSeconds: null };
  const t0 = performance.now();
  const app = join(dir, 'app');
  // the compiled app is the same for every worker image
  if (!(await stat(app).then(() => true, () => false))) await buildApp(app);
  const context = await imageContext(name, app, join(dir, `ctx-${name}`));
  const { digest } = await fleet.client.uploadContext(context.dir);
  await fleet.client.submit({ id: `self-${name}`, context: { digest }, buildArgs: { ...context.buildArgs }, image: { repository: `fleet/${name}`, tags: ['pod-test'] } });
  const final = await fleet.client.follow(`self-${name}`, {});
  if (final.state.phase !== 'pushed') throw new Error(`the worker image did not build: ${JSON.stringify(final.state)}`);
  const partial = `${path}.${process.pid}.part`;
  await execa('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${fleet.registry.host}/fleet/${name}:pod-test`, `oci-archive:${partial}`]);
  await chmod(partial, 0o644);
  // older archives are other source states: keep only this one
  for (const f of await readdir(cache)) if (f.startsWith(`${name}-`) && f.endsWith('.oci.tar')) await rm(join(cache, f), { force: true });
  await rename(partial, path);
  return { path, builtInSeconds: Math.round((performance.now() - t0) / 1000) };
}

// ---- the pod's network: cluster Services stand-in ----

/**
 * A sidecar in the worker's network namespace (as containers of one pod share one) forwarding
 * the fleet's loopback ports to the host through slirp4netns (10.0.2.2 is the host's loopback
 * with allow_host_loopback): in a cluster these are Service addresses. The worker container itself
 * gets no host network and no port of the host.
 */
const FORWARDER = `
const net = require('node:net');
const ports = process.argv.slice(1).map(Number);
let up = 0;
for (const p of ports) {
  net.createServer((s) => {
    const c = net.connect(p, '10.0.2.2');
    s.pipe(c).pipe(s);
    s.on('error', () => c.destroy());
    c.on('error', () => s.destroy());
  }).listen(p, '127.0.0.1', () => { if (++up === ports.length) console.log('forwarding ' + ports.join(' ')); });
}`;

const portOf = (url: string): string => new URL(url.includes('://') ? url : `tcp://${url}`).port;

// ---- what the machine must have (else the file is skipped, saying why) ----

/** A user's subordinate id range. */
async function subordinateRange(file: '/etc/subuid' | '/etc/subgid', name: string): Promise<{ start: number; count: number } | null> {
  const line = (await readFile(file, 'utf8').catch(() => '')).split('\n').find((l) => l.startsWith(`${name}:`));
  const [, start, count] = line?.split(':') ?? [];
  return start === undefined || count === undefined ? null : { start: Number(start), count: Number(count) };
}

const BUILD_USER = process.env.FLEET_BUILD_USER ?? 'fleetbuild';

async function missingCapability(): Promise<string | null> {
  if ((await execa('podman', ['--version'], { reject: false })).exitCode !== 0) return 'podman is not installed (scripts/bootstrap)';
  for (const file of ['/etc/subuid', '/etc/subgid'] as const) {
    const range = await subordinateRange(file, BUILD_USER);
    // the pod's user namespace has 65,536 ids: the image's build user and its 1001-65535 must fit
    if (range === null || range.count < 65_536) return `${BUILD_USER} needs 65,536 subordinate ids in ${file} (a pod's user namespace), has ${range?.count ?? 0}`;
  }
  return null;
}

const MISSING = await missingCapability();
if (MISSING !== null) console.warn(`worker-pod.test.ts skipped: ${MISSING}`);

// ---- the run ----

let fleet: LocalFleet;
let dir: string;
let containers: BuildUserContainers;
const timings: Record<string, Record<string, number | null>> = {};

beforeAll(async () => {
  if (MISSING !== null) return;
  const t0 = performance.now();
  dir = await mkdtemp(join(tmpdir(), 'fleet-worker-pod-'));
  await chmod(dir, 0o755);
  // the host worker (pool default) builds the worker images; each pool is its pod's alone
  fleet = await startTestFleet({ natsTls: true, coordinator: { pools: [...POOLS] } });
  containers = await buildUserContainers(join(dir, 'podman'), [fleet.registry.host]);
  timings.setup = { seconds: Math.round((performance.now() - t0) / 1000) };
}, 1_200_000);

afterAll(async () => {
  if (containers !== undefined) {
    await execa('podman', ['rm', '--force', '--time', '0', '--ignore', ...POOLS.map((p) => `worker-pod-net-${p}`)], { ...containers.opts, reject: false });
    await containers.close();
  }
  await fleet?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  // the runtime the issue asks to report
  console.log(`worker-pod: ${JSON.stringify(timings)}`);
}, 120_000);

/** Host uid/gid of an id inside the build user's user namespace (1 → the first subordinate id). */
async function hostId(file: '/etc/subuid' | '/etc/subgid', name: string, inner: number): Promise<number> {
  const range = await subordinateRange(file, name);
  if (range === null) throw new Error(`no ${file} range for ${name}`);
  return range.start + inner - 1;
}

describe.skipIf(MISSING !== null)('the worker image in a pod (rootless podman with the manifest’s security settings)', () => {
  it.each(POOLS)('%s: builds a sample app with its builder nested in the pod’s user namespace, pushes it, and exits 0 after one build', async (POOL) => {
    const t = (timings[POOL] = {} as Record<string, number | null>);
    const tImage = performance.now();
    const image = await workerImage(fleet, dir, POOL);
    const imageRef = (await execa('podman', ['pull', '--quiet', `oci-archive:${image.path}`], containers.opts)).stdout.trim();
    t.imageBuiltInSeconds = image.builtInSeconds;
    t.imageReadySeconds = Math.round((performance.now() - tImage) / 1000);
    const { pod, workerJson } = await readManifest(POOL);
    const container = pod.containers.find((c) => c.name === 'worker');
    if (container === undefined) throw new Error('no worker container in the manifest');
    const security = podmanSecurityFlags(pod, container);
    const uid = container.securityContext.runAsUser ?? pod.securityContext.runAsUser ?? 0;
    const gid = container.securityContext.runAsGroup ?? pod.securityContext.runAsGroup ?? 0;
    const [hostUid, hostGid] = [await hostId('/etc/subuid', BUILD_USER, uid), await hostId('/etc/subgid', BUILD_USER, gid)];
    const owner = (await buildUser()).switchUser;

    // the pod's volumes, as the kubelet would give them: Secrets and ConfigMaps read-only, the state an emptyDir of the pod's user
    const vol = (name: string): string => join(dir, `volumes-${POOL}`, name);
    const nats = fleet.natsCredentials[`worker-${POOL}`];
    if (nats?.tlsCaFile === undefined) throw new Error('no TLS credentials for the pool');
    const s3 = fleet.s3.options;
    const credentials = s3.credentials;
    if (credentials === undefined || s3.endpoint === undefined) throw new Error('the test fleet’s S3 has no endpoint or keys');
    const files: Record<string, Record<string, string | Buffer>> = {
      config: {
        'worker.json': JSON.stringify({
          ...workerJson,
          // the test fleet's addresses in place of the cluster's Service names
          natsUrl: fleet.nats.url,
          s3: { bucket: s3.bucket, region: s3.region ?? 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true },
          insecureRegistries: [fleet.registry.host],
        }),
      },
      'nats-seed': { seed: await readFile(nats.seedFile) },
      'nats-tls': { 'ca.crt': await readFile(nats.tlsCaFile) },
      registry: { '.dockerconfigjson': '{"auths":{}}' },
      signing: { 'official.pub': await readFile(join(cacheDir(), 'keys', 'official.pub')) },
      secrets: {},
      state: {},
    };
    const mounts: string[] = [];
    for (const m of container.volumeMounts) {
      const content = files[m.name];
      if (content === undefined) throw new Error(`the manifest mounts volume ${m.name}, which this test does not provide`);
      await mkdir(vol(m.name), { recursive: true, mode: 0o755 });
      for (const [f, body] of Object.entries(content)) await writeFile(join(vol(m.name), f), body, { mode: 0o400 });
      // Secret files belong to the pod's user (fsGroup); the state dir is the pod user's own.
      // As root: the host ids of uid/gid; as the build user itself: through its user namespace.
      if (owner) {
        await chown(vol(m.name), hostUid, hostGid);
        for (const f of Object.keys(content)) await chown(join(vol(m.name), f), hostUid, hostGid);
      } else {
        await execa('podman', ['unshare', 'chown', '-R', `${uid}:${gid}`, vol(m.name)], containers.opts);
      }
      mounts.push('--volume', `${vol(m.name)}:${m.mountPath}${m.readOnly === true ? ':ro' : ''}`);
    }

    // the network sidecar, then the worker in its network namespace
    const ports = [portOf(fleet.nats.url), portOf(fleet.registry.host), portOf(s3.endpoint)];
    const sidecar = await execa('podman', ['run', '--detach', '--name', `worker-pod-net-${POOL}`, '--network', 'slirp4netns:allow_host_loopback=true', '--user', `${uid}:${gid}`, '--cap-drop=all', '--entrypoint', '/usr/local/bin/node', imageRef, '-e', FORWARDER, ...ports], containers.opts);
    expect(sidecar.stdout.trim()).toMatch(/^[0-9a-f]{64}$/);
    await eventually(async () => (await execa('podman', ['logs', `worker-pod-net-${POOL}`], containers.opts)).stdout.includes('forwarding'), 60_000, 'the network sidecar listening');

    const [entrypoint, ...commandArgs] = container.command;
    if (entrypoint === undefined) throw new Error('the worker container has no command');
    const args = [
      'run', '--rm', '--name', `worker-pod-${POOL}`, '--network', `container:worker-pod-net-${POOL}`,
      ...security,
      '--env', `AWS_ACCESS_KEY_ID=${credentials.accessKeyId}`, '--env', `AWS_SECRET_ACCESS_KEY=${credentials.secretAccessKey}`,
      // one build per pod, as the ScaledJob variant runs it
      '--env', 'FLEET_WORKER_MAX_BUILDS=1',
      ...mounts,
      '--entrypoint', JSON.stringify([entrypoint]),
      imageRef, ...commandArgs, ...container.args,
    ];
    const t0 = performance.now();
    const worker = execa('podman', args, { ...containers.opts, reject: false, all: true });
    let output = '';
    worker.all?.on('data', (d: Buffer) => { output += d.toString(); });
    try {
      await eventually(async () => (await fleet.client.workers()).some((w) => w.pool === POOL) || worker.exitCode !== null, 180_000, 'the pod worker announcing itself');
      expect(worker.exitCode, output).toBeNull();
      t.workerReadySeconds = Math.round((performance.now() - t0) / 100) / 10;

      const { digest } = await fleet.client.uploadContext(fixture('tiny'));
      await fleet.client.submit({ id: `pod-tiny-${POOL}`, pool: POOL, context: { digest }, buildArgs: { N: '7' }, image: { repository: `apps/pod-tiny-${POOL}`, tags: ['1'] } });
      const t1 = performance.now();
      const final = await fleet.client.follow(`pod-tiny-${POOL}`, {});
      t.buildSeconds = Math.round((performance.now() - t1) / 100) / 10;
      expect(final.state.phase, `${JSON.stringify(final.state)}\n${output}`).toBe('pushed');
    } finally {
      const ended = await worker;
      t.podSeconds = Math.round((performance.now() - t0) / 100) / 10;
      // FLEET_WORKER_MAX_BUILDS=1: drained after its one build, exit 0 (a failure above shows first)
      expect(ended.exitCode, output).toBe(0);
    }
    // the RUN step ran (in the builder's user namespace inside the pod's) and the image is in the registry
    const pushed = await execa('skopeo', ['inspect', '--tls-verify=false', `docker://${fleet.registry.host}/apps/pod-tiny-${POOL}:1`]);
    expect(JSON.parse(pushed.stdout)).toHaveProperty('Digest');
  }, 1_800_000);
});

