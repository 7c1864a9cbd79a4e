import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetClient } from '../../client/index.ts';
import type { TenancyConfig } from '../../coordinator/tenancy/tenants.ts';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import { ErrorCode, isFleetError } from '../../protocol/index.ts';
import { archivedLog, startTestFleet } from '../helpers/fleet.ts';

/**
 * `RUN --mount=type=cache` directories outlive the build on buildah and BuildKit (kaniko ignores
 * the mount). Two tenants share the pools: what one tenant's build leaves in a cache mount must
 * not be read by the other's (a leak) nor replace what the first reads next (a poisoned cache),
 * while the tenant's own next build still finds it. Builds by build arg N, so no step is a
 * layer-cache hit: every RUN runs and prints what the cache holds.
 */

const POOLS = ['default', 'buildkit', 'kaniko'] as const;
const ALPHA: TenancyConfig['tenants'][number] = { name: 'alpha', repositories: ['app/alpha/*'], pools: [...POOLS], secrets: {}, limits: {} };
const BETA: TenancyConfig['tenants'][number] = { name: 'beta', repositories: ['app/beta/*'], pools: [...POOLS], secrets: {}, limits: {} };

let fleet: LocalFleet;
let dir: string;
let context: string;
const clients: Record<string, FleetClient> = {};

beforeAll(async () => {
  fleet = await startTestFleet({ workers: 0, tenants: [ALPHA, BETA], coordinator: { pools: [...POOLS] } });
  await fleet.addWorker({ pool: 'default', builder: 'buildah' });
  await fleet.addWorker({ pool: 'buildkit', builder: 'buildkit' });
  await fleet.addWorker({ pool: 'kaniko', builder: 'kaniko' });
  dir = await mkdtemp(join(tmpdir(), 'fleet-cache-mounts-'));
  await writeFile(join(dir, 'Dockerfile'), [
    `FROM ${fleet.registry.host}/official/base:1`,
    'ARG N',
    // prints what the cache holds (or CACHE-EMPTY), then leaves its own mark there
    'RUN --mount=type=cache,target=/var/cache/app mkdir -p /var/cache/app && echo "cache holds: $(cat /var/cache/app/mark 2>/dev/null || echo CACHE-EMPTY)" && echo "mark-of-$N" > /var/cache/app/mark',
    'USER 1000',
  ].join('\n'));
  context = (await fleet.client.uploadContext(dir)).digest;
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
});

/** One build of the tenant's on the pool; what its RUN step found in the cache mount. */
async function cacheSeenBy(tenant: string, pool: string, n: string): Promise<string> {
  const client = clients[tenant];
  if (client === undefined) throw new Error(`no client for ${tenant}`);
  const id = `cm-${pool}-${n}-${Date.now().toString(36)}`;
  await client.submit({ id, context: { digest: context }, pool, buildArgs: { N: n }, image: { repository: `app/${tenant}/cache`, tags: [n] } });
  // followed by the platform's client: a tenant's NATS user reads its builds by status, not the event stream
  const done = await fleet.client.follow(id, {});
  const log = await archivedLog(fleet, id);
  expect(done.state.phase, log).toBe('pushed');
  // the output line, not the step's own text (which the log also has: `cache holds: $(cat …`)
  const seen = /cache holds: ([A-Za-z0-9-]+)/.exec(log)?.[1];
  if (seen === undefined) throw new Error(`${id}: the RUN step printed nothing:\n${log}`);
  return seen;
}

describe('RUN cache mounts across tenants', () => {
  it.each(['default', 'buildkit'])("keeps one tenant's cache mount from the other's builds, and still serves its own next build (%s)", async (pool) => {
    expect(await cacheSeenBy('alpha', pool, 'alpha-1')).toBe('CACHE-EMPTY');
    // beta's build on the same worker, same mount target: nothing of alpha's
    expect(await cacheSeenBy('beta', pool, 'beta-1')).toBe('CACHE-EMPTY');
    // alpha's own cache survives, untouched by beta's write
    expect(await cacheSeenBy('alpha', pool, 'alpha-2')).toBe('mark-of-alpha-1');
    expect(await cacheSeenBy('beta', pool, 'beta-2')).toBe('mark-of-beta-1');
  });

  it('keeps nothing between builds on kaniko, which ignores the mount', async () => {
    expect(await cacheSeenBy('alpha', 'kaniko', 'alpha-1')).toBe('CACHE-EMPTY');
    expect(await cacheSeenBy('beta', 'kaniko', 'beta-1')).toBe('CACHE-EMPTY');
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
