import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetClient } from '../../client/index.ts';
import type { TenancyConfig } from '../../coordinator/tenancy/tenants.ts';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import { ErrorCode, isFleetError } from '../../protocol/index.ts';
import { archivedLog, startTestFleet } from '../helpers/fleet.ts';
import { secretsDir } from '../helpers/secrets.ts';

/**
 * What builders keep between builds, across two tenants sharing the pools (one worker per
 * builder). `RUN --mount=type=cache` directories outlive the build on every builder (kaniko
 * ignores the mount, so the worker mounts a directory of its own there): what one tenant's build leaves in a cache mount must not be read by
 * the other's (a leak) nor replace what the first reads next (a poisoned cache), while the
 * tenant's own next build still finds it. Builds by build arg N, so no step is a layer-cache hit:
 * every RUN runs and prints what the cache holds. And the builders' local layer caches, whose key
 * does not cover what a RUN step read from a secret: a layer one tenant's build made from its
 * secret must not be served to the other tenant's build of the same Dockerfile.
 */

const POOLS = ['default', 'buildkit', 'kaniko'] as const;
const ALPHA: TenancyConfig['tenants'][number] = { name: 'alpha', repositories: ['app/alpha/*'], pools: [...POOLS], secrets: Object.fromEntries(POOLS.map((p) => [p, ['token']])), limits: {} };
const BETA: TenancyConfig['tenants'][number] = { name: 'beta', repositories: ['app/beta/*'], pools: [...POOLS], secrets: {}, limits: {} };

let fleet: LocalFleet;
let dir: string;
let context: string;
/** the secret-derived layer's context */
let derivedContext: string;
/** a Dockerfile on the base named by build arg BASE, printing how many base tarballs kaniko's RUN steps can see */
let basesContext: string;
let secrets: string;
const clients: Record<string, FleetClient> = {};

beforeAll(async () => {
  secrets = await secretsDir({ token: 'alpha-only-token-value' });
  fleet = await startTestFleet({ workers: 0, tenants: [ALPHA, BETA], coordinator: { pools: [...POOLS] }, worker: { secretsDir: secrets } });
  await fleet.addWorker({ pool: 'default', builder: 'buildah' });
  await fleet.addWorker({ pool: 'buildkit', builder: 'buildkit' });
  await fleet.addWorker({ pool: 'kaniko', builder: 'kaniko' });
  dir = await mkdtemp(join(tmpdir(), 'fleet-cache-mounts-'));
  const base = `${fleet.registry.host}/official/base:1`;
  context = await uploadDockerfile('cache-mount', [
    `FROM ${base}`,
    'ARG N',
    // prints what the cache holds (or CACHE-EMPTY), then leaves its own mark there
    'RUN --mount=type=cache,target=/var/cache/app mkdir -p /var/cache/app && echo "cache holds: $(cat /var/cache/app/mark 2>/dev/null || echo CACHE-EMPTY)" && echo "mark-of-$N" > /var/cache/app/mark',
  ]);
  derivedContext = await uploadDockerfile('derived', [
    `FROM ${base}`,
    // the same instruction for both tenants; what it writes depends on the secret the build was granted
    "RUN --mount=type=secret,id=token sh -c 'if [ -f /run/secrets/token ]; then echo from-secret-$(sha256sum /run/secrets/token | cut -c1-12); else echo no-secret; fi > /derived'",
    'ARG N',
    'RUN echo "derived holds: $(cat /derived)"',
  ]);
  basesContext = await uploadDockerfile('bases', [
    'ARG BASE',
    'FROM ${BASE}',
    // as root, whatever the base's user: the most a RUN step could see
    'USER 0',
    'ARG N',
    // kaniko's base cache dir, as a RUN step sees it (kaniko runs the steps in its own container)
    'RUN echo "bases visible: $(ls /fleet/bases | wc -l)"',
  ]);
  for (const t of [ALPHA, BETA]) {
    const credentials = fleet.natsCredentials[`tenant-${t.name}`];
    if (credentials === undefined) throw new Error(`no NATS user for tenant ${t.name}`);
    clients[t.name] = await FleetClient.connect(fleet.nats.url, credentials, fleet.s3.options);
  }
}, 300_000);

afterAll(async () => {
  await Promise.all(Object.values(clients).map((c) => c.close()));
  await fleet?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  if (secrets !== undefined) await rm(secrets, { recursive: true, force: true });
});

/** A context of one Dockerfile (its lines, then `USER 1000` for the gates); its digest. */
async function uploadDockerfile(name: string, lines: readonly string[]): Promise<string> {
  const contextDir = join(dir, name);
  await mkdir(contextDir);
  await writeFile(join(contextDir, 'Dockerfile'), [...lines, 'USER 1000'].join('\n'));
  return (await fleet.client.uploadContext(contextDir)).digest;
}

/** One build of the tenant's on the pool; what its last RUN step printed after `label: `. */
async function seenBy(tenant: string, pool: string, n: string, label: string, ctx: string, opts: { secrets?: string[]; buildArgs?: Record<string, string> } = {}): Promise<string> {
  const client = clients[tenant];
  if (client === undefined) throw new Error(`no client for ${tenant}`);
  const id = `cm-${pool}-${n}-${Date.now().toString(36)}`;
  await client.submit({ id, context: { digest: ctx }, pool, buildArgs: { N: n, ...opts.buildArgs }, secrets: opts.secrets ?? [], image: { repository: `app/${tenant}/cache`, tags: [n] } });
  // followed by the platform's client: a tenant's NATS user reads its builds by status, not the event stream
  const done = await fleet.client.follow(id, {});
  const log = await archivedLog(fleet, id);
  expect(done.state.phase, log).toBe('pushed');
  // the output line, not the step's own text (which the log also has: `cache holds: $(cat …`)
  const seen = new RegExp(`${label}: ([A-Za-z0-9-]+)`).exec(log)?.[1];
  if (seen === undefined) throw new Error(`${id}: the RUN step printed nothing:\n${log}`);
  return seen;
}

/** What the tenant's build found in the cache mount. */
function cacheSeenBy(tenant: string, pool: string, n: string): Promise<string> {
  return seenBy(tenant, pool, n, 'cache holds', context);
}

describe('what builders keep between builds, across tenants', () => {
  it.each(POOLS)("keeps one tenant's cache mount from the other's builds, and still serves its own next build (%s)", async (pool) => {
    expect(await cacheSeenBy('alpha', pool, 'alpha-1')).toBe('CACHE-EMPTY');
    // beta's build on the same worker, same mount target: nothing of alpha's
    expect(await cacheSeenBy('beta', pool, 'beta-1')).toBe('CACHE-EMPTY');
    // alpha's own cache survives, untouched by beta's write
    expect(await cacheSeenBy('alpha', pool, 'alpha-2')).toBe('mark-of-alpha-1');
    expect(await cacheSeenBy('beta', pool, 'beta-2')).toBe('mark-of-beta-1');
  });

  it.each(POOLS)("never serves one tenant's secret-derived layer to another tenant's build of the same Dockerfile, and still serves the tenant's own (%s)", async (pool) => {
    const fromSecret = await seenBy('alpha', pool, 'alpha-s1', 'derived holds', derivedContext, { secrets: ['token'] });
    expect(fromSecret).toMatch(/^from-secret-[0-9a-f]{12}$/);
    // beta has no such secret: its build of the same instruction runs it, on its own cache
    expect(await seenBy('beta', pool, 'beta-s1', 'derived holds', derivedContext)).toBe('no-secret');
    // alpha's next build on the same worker: its own layer, whichever builds came between
    expect(await seenBy('alpha', pool, 'alpha-s2', 'derived holds', derivedContext, { secrets: ['token'] })).toBe(fromSecret);
  });

  it("kaniko: a build's RUN steps see its own bases only, never the base tarballs the worker keeps from another tenant's builds", async () => {
    const official = `${fleet.registry.host}/official/base:1`;
    expect(await seenBy('alpha', 'kaniko', 'pb-1', 'bases visible', basesContext, { buildArgs: { BASE: official } })).toBe('1');
    // alpha's own image as a base: the worker keeps its tarball
    expect(await seenBy('alpha', 'kaniko', 'pb-2', 'bases visible', basesContext, { buildArgs: { BASE: `${fleet.registry.host}/app/alpha/cache:pb-1` } })).toBe('1');
    // beta's build on the same worker: its one base, not alpha's beside it
    expect(await seenBy('beta', 'kaniko', 'pb-3', 'bases visible', basesContext, { buildArgs: { BASE: official } })).toBe('1');
  });

  it("refuses BuildKit's own options as build args (a frontend image, another tenant's cache namespace), naming the field", async () => {
    const beta = clients.beta;
    if (beta === undefined) throw new Error('no client for beta');
    for (const name of ['BUILDKIT_CACHE_MOUNT_NS', 'BUILDKIT_SYNTAX']) {
      const err = await beta.submit({ id: `cm-ns-${name.toLowerCase().replace(/_/g, '-')}`, context: { digest: context }, pool: 'buildkit', buildArgs: { [name]: 'tenant:alpha' }, image: { repository: 'app/beta/cache', tags: ['ns'] } }).then(() => null, (e: unknown) => e);
      expect(isFleetError(err, ErrorCode.E_INVALID_REQUEST), String(err)).toBe(true);
      expect(String((err as Error).message)).toContain(`buildArgs.${name}`);
    }
  });
});
