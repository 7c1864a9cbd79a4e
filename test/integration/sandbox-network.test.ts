import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalFleet, LocalFleetOptions } from '../../deploy/local/fleet.ts';
import { BUILDER_KINDS, ErrorCode, type BuilderKind } from '../../protocol/index.ts';
import { archivedLog, startTestFleet } from '../helpers/fleet.ts';

/**
 * A RUN step tries a TCP connection to every target of /targets (`LABEL HOST PORT` per line) and
 * prints one verdict line each; bash's /dev/tcp needs no tool the base may lack.
 */
const PROBE = `while read -r label host port; do
  if timeout 5 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null; then v=REACHED; else v=BLOCKED; fi
  echo "PROBE $label $host $port $v"
done < /targets
echo "PROBE-DONE"
`;
const DOCKERFILE = 'ARG FLEET_REGISTRY\nFROM ${FLEET_REGISTRY}/official/base:1\nCOPY targets probe.sh /\nRUN bash /probe.sh\nUSER 1000\n';
const VERDICT = /PROBE (\S+) (\S+) (\d+) (REACHED|BLOCKED)/g;

/**
 * Every address the worker's host answers on: loopback by name and number, slirp's alias for the
 * host's loopback, and each interface address (link-local IPv6 aside: it needs a scope).
 */
function hostAddresses(): string[] {
  const interfaces = Object.values(networkInterfaces()).flatMap((list) => list ?? []);
  return [...new Set(['127.0.0.1', 'localhost', '10.0.2.2', ...interfaces.map((i) => i.address).filter((a) => !a.startsWith('fe80'))])];
}

let fleet: LocalFleet;
let contextDir: string;
let context: string;
/** a listener on every interface: the RUN step reaching it shows outbound traffic works, so a BLOCKED verdict is the sandbox */
let control: Server;
let controlAddress: string;

beforeAll(async () => {
  fleet = await startTestFleet({ workers: 0, coordinator: { pools: ['buildkit', 'kaniko', ...BUILDER_KINDS.map((b) => `offline-${b}`)] } });
  for (const builder of BUILDER_KINDS) {
    await fleet.addWorker({ pool: builder === 'buildah' ? 'default' : builder, builder });
    // runNetwork is a worker option the local fleet passes through as it is
    await fleet.addWorker({ pool: `offline-${builder}`, builder, runNetwork: 'none' } as LocalFleetOptions['worker']);
  }
  control = createServer((socket) => socket.end());
  await new Promise<void>((resolve) => control.listen(0, '0.0.0.0', resolve));
  const port = (control.address() as { port: number }).port;
  controlAddress = Object.values(networkInterfaces()).flatMap((l) => l ?? []).find((i) => i.family === 'IPv4' && !i.internal)?.address ?? '';
  const services: Record<string, number> = {
    nats: fleet.nats.port,
    coordinator: Number(new URL(fleet.coordinator.httpUrl).port),
    s3: Number(new URL(fleet.s3.options.endpoint).port),
    registry: Number(fleet.registry.host.split(':')[1]),
  };
  const targets = Object.entries(services).flatMap(([label, p]) => hostAddresses().map((host) => `${label} ${host} ${p}`));
  contextDir = await mkdtemp(join(tmpdir(), 'fleet-sandbox-net-'));
  await writeFile(join(contextDir, 'Dockerfile'), DOCKERFILE);
  await writeFile(join(contextDir, 'probe.sh'), PROBE);
  await writeFile(join(contextDir, 'targets'), `${[...targets, `control ${controlAddress} ${port}`].join('\n')}\n`);
  context = (await fleet.client.uploadContext(contextDir)).digest;
}, 300_000);
afterAll(async () => {
  await fleet?.stop();
  control?.close();
  if (contextDir !== undefined) await rm(contextDir, { recursive: true, force: true });
});

/** Runs the probe build on a pool; returns its verdicts (label → host → verdict) from the archived log, and the whole log. */
async function probe(builder: BuilderKind, pool: string, id: string): Promise<{ verdicts: { label: string; target: string; verdict: string }[]; log: string }> {
  // A repository (so a layer cache) per build: a cached RUN step would print nothing.
  await fleet.client.submit({ id, context: { digest: context }, pool, image: { repository: `sandbox/${id}`, tags: ['1'] } });
  const done = await fleet.client.follow(id, {});
  expect(done.state, `${builder} build ${id}: ${JSON.stringify(done.state)}`).toMatchObject({ phase: 'pushed' });
  const log = await archivedLog(fleet, id);
  expect(log).toContain('PROBE-DONE');
  const verdicts = [...log.matchAll(VERDICT)].map((m) => ({ label: m[1] ?? '', target: `${m[2] ?? ''}:${m[3] ?? ''}`, verdict: m[4] ?? '' }));
  return { verdicts, log };
}

describe.each(BUILDER_KINDS)('sandboxed network: %s', (builder: BuilderKind) => {
  it(`network (${builder}): a RUN step reaches none of NATS, the coordinator, S3 or the registry by any host address, reaches outside, and the build still pulls its base and pushes`, async () => {
    const { verdicts } = await probe(builder, builder === 'buildah' ? 'default' : builder, `net-${builder}`);
    for (const v of verdicts.filter((x) => x.label !== 'control')) console.log(`${builder} ${v.label} ${v.target} ${v.verdict}`);
    const services = verdicts.filter((v) => v.label !== 'control');
    expect(services.length).toBe(4 * hostAddresses().length);
    expect(services.filter((v) => v.verdict !== 'BLOCKED')).toEqual([]);
    expect(verdicts.find((v) => v.label === 'control')?.verdict, 'outbound to a host address that listens').toBe('REACHED');
  }, 600_000);

  it(`network none (${builder}): a RUN step on a runNetwork: none pool connects nowhere`, async () => {
    const { verdicts } = await probe(builder, `offline-${builder}`, `offline-${builder}`);
    expect(verdicts.length).toBe(4 * hostAddresses().length + 1);
    expect(verdicts.filter((v) => v.verdict !== 'BLOCKED')).toEqual([]);
  }, 600_000);
});

describe('RUN flags that would leave the sandbox', () => {
  it.each(BUILDER_KINDS)('%s: RUN --network=host is refused before the build, naming the line (buildah would run the step in the worker network)', async (builder) => {
    const dir = await mkdtemp(join(tmpdir(), 'fleet-net-host-'));
    try {
      await writeFile(join(dir, 'Dockerfile'), `ARG FLEET_REGISTRY\nFROM \${FLEET_REGISTRY}/official/base:1\nRUN --network=host bash -c "exec 3<>/dev/tcp/127.0.0.1/${fleet.nats.port}" && echo REACHED-THE-FLEET\nUSER 1000\n`);
      const id = `net-host-${builder}`;
      await fleet.client.submit({ id, context: { digest: (await fleet.client.uploadContext(dir)).digest }, pool: builder === 'buildah' ? 'default' : builder, image: { repository: `sandbox/${id}`, tags: ['1'] } });
      const done = await fleet.client.follow(id, {});
      const error = (done.state as { error?: { code: string; message: string } }).error;
      expect(error?.code, JSON.stringify(done.state)).toBe(ErrorCode.E_DOCKERFILE_INVALID);
      expect(error?.message).toContain('RUN flag refused at Dockerfile line 3');
      expect(await archivedLog(fleet, id)).not.toContain('REACHED-THE-FLEET\n');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 300_000);
});

/** An HTTP service on the worker's loopback, as the fleet's are: every request it gets is recorded. */
async function internalService(): Promise<{ hits: string[]; port: number; close: () => void }> {
  const hits: string[] = [];
  const server = createHttpServer((req, res) => {
    hits.push(req.url ?? '');
    res.end('internal\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { hits, port: (server.address() as { port: number }).port, close: () => server.close() };
}

describe('ADD of a URL on the fleet network', () => {
  it.each(BUILDER_KINDS)("%s: never fetches from the worker's loopback, and fails at once with a final error", async (builder) => {
    // BuildKit and kaniko fetch in the sandbox, where the host's loopback is out of reach; buildah
    // would fetch in its own process, so buildah pools refuse a remote ADD before building.
    const { hits, port, close } = await internalService();
    const dir = await mkdtemp(join(tmpdir(), 'fleet-add-url-'));
    try {
      await writeFile(join(dir, 'Dockerfile'), `ARG FLEET_REGISTRY\nFROM \${FLEET_REGISTRY}/official/base:1\nADD http://127.0.0.1:${port}/internal /internal\nUSER 1000\n`);
      const id = `add-url-${builder}`;
      await fleet.client.submit({ id, context: { digest: (await fleet.client.uploadContext(dir)).digest }, pool: builder === 'buildah' ? 'default' : builder, image: { repository: `sandbox/${id}`, tags: ['1'] } });
      const done = await fleet.client.follow(id, {});
      expect(done.state.phase, JSON.stringify(done.state)).toBe('failed');
      const error = (done.state as { error?: { code: string; message: string } }).error;
      expect(error?.code, error?.message).toBe(builder === 'buildah' ? ErrorCode.E_DOCKERFILE_INVALID : ErrorCode.E_COPY_SOURCE_MISSING);
      expect(error?.message).toContain(builder === 'buildah' ? 'ADD of a remote source at Dockerfile line 3' : 'ADD source could not be fetched');
      // final: one attempt, not retried as a registry outage
      expect(await archivedLog(fleet, id)).not.toContain('(attempt 2)');
      expect(hits).toEqual([]);
    } finally {
      close();
      await rm(dir, { recursive: true, force: true });
    }
  }, 300_000);

  it("buildah: refuses a base whose ONBUILD trigger is a remote ADD (it runs as a line of the Dockerfile), fetching nothing", async () => {
    const { hits, port, close } = await internalService();
    const dir = await mkdtemp(join(tmpdir(), 'fleet-onbuild-url-'));
    try {
      // the parent on BuildKit, which keeps ONBUILD in its image config (buildah's OCI images do not)
      await writeFile(join(dir, 'Dockerfile'), `ARG FLEET_REGISTRY\nFROM \${FLEET_REGISTRY}/official/base:1\nONBUILD ADD http://127.0.0.1:${port}/internal /internal\nUSER 1000\n`);
      await fleet.client.submit({ id: 'onbuild-url-parent', context: { digest: (await fleet.client.uploadContext(dir)).digest }, pool: 'buildkit', image: { repository: 'sandbox/onbuild-url-parent', tags: ['1'] } });
      expect((await fleet.client.follow('onbuild-url-parent', {})).state.phase).toBe('pushed');
      await writeFile(join(dir, 'Dockerfile'), `FROM ${fleet.registry.host}/sandbox/onbuild-url-parent:1\nUSER 1000\n`);
      await fleet.client.submit({ id: 'onbuild-url-child', context: { digest: (await fleet.client.uploadContext(dir)).digest }, pool: 'default', image: { repository: 'sandbox/onbuild-url-child', tags: ['1'] } });
      const done = await fleet.client.follow('onbuild-url-child', {});
      const error = (done.state as { error?: { code: string; message: string } }).error;
      expect(error?.code, JSON.stringify(done.state)).toBe(ErrorCode.E_DOCKERFILE_INVALID);
      expect(error?.message).toContain("in a base image's ONBUILD trigger (ADD http://127.0.0.1:");
      expect(hits).toEqual([]);
    } finally {
      close();
      await rm(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
