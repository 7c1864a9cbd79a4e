import { readFile } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { z } from 'zod';
import { ErrorCode, FleetError, PLATFORM_TENANT, PoolName, SecretId, TenantName, parseWith } from '../../protocol/index.ts';

/** Repositories only the platform writes: official images, platform services, quarantine, caches. */
export const PLATFORM_PREFIXES = ['official/', 'platform/', 'quarantine/', 'cache/'] as const;

/** `app/payments/*` owns every repository under app/payments/; `app/payments` owns that one repository. */
const RepositoryPattern = z.string().regex(/^[a-z0-9][a-z0-9._/-]*(\/\*)?$/, 'must be a repository path, optionally ending in "/*"');

/**
 * Where a tenant's notifications go (coordinator/notifications): a webhook, each request signed
 * with HMAC-SHA256 under a secret shared with the receiver. The secret lives in a file (mounted
 * from the platform's secret store), never in this file, and is read at each delivery, so a
 * rotated secret applies at once.
 */
export const NotificationHook = z.strictObject({
  url: z.url({ protocol: /^https?$/ }),
  secretFile: z.string().refine(isAbsolute, 'must be an absolute path'),
});
export type NotificationHook = z.infer<typeof NotificationHook>;

export const TenantConfig = z.strictObject({
  name: TenantName,
  /** repositories the tenant owns, e.g. `app/payments/*`, `bases/payments/*` */
  repositories: z.array(RepositoryPattern).min(1),
  /** pools its builds may run on */
  pools: z.array(PoolName).min(1),
  /** per pool: the build secret ids its requests may name */
  secrets: z.record(PoolName, z.array(SecretId)).default({}),
  limits: z
    .strictObject({
      /** the longest run timeout a request may ask for */
      maxRunTimeoutSeconds: z.number().int().positive().optional(),
      /** builds queued or running at once; more are refused */
      maxActiveBuilds: z.number().int().positive().optional(),
    })
    .prefault({}),
  /** absent: the tenant is not notified (deliveries are still recorded, as `no-hook`) */
  notifications: NotificationHook.optional(),
});
export type TenantConfig = z.infer<typeof TenantConfig>;

/** The platform team's file naming the tenants (teams, projects) and what each owns. */
export const TenancyConfig = z
  .strictObject({
    tenants: z.array(TenantConfig),
    /** the platform's own tenant (official images, builds submitted by platform admins) */
    platform: z.strictObject({ notifications: NotificationHook.optional() }).optional(),
  })
  .superRefine((c, ctx) => {
    const seen = new Set<string>();
    c.tenants.forEach((t, i) => {
      if (seen.has(t.name)) ctx.addIssue({ code: 'custom', path: ['tenants', i, 'name'], message: `tenant "${t.name}" is named twice` });
      seen.add(t.name);
      if (t.name === PLATFORM_TENANT) ctx.addIssue({ code: 'custom', path: ['tenants', i, 'name'], message: `"${PLATFORM_TENANT}" is the platform's own tenant` });
      t.repositories.forEach((r, j) => {
        if (PLATFORM_PREFIXES.some((p) => `${r}/`.startsWith(p))) {
          ctx.addIssue({ code: 'custom', path: ['tenants', i, 'repositories', j], message: `${PLATFORM_PREFIXES.join(', ')} belong to the platform` });
        }
      });
    });
    // Two tenants owning one repository would let either overwrite the other's releases.
    for (const [i, a] of c.tenants.entries()) {
      for (const b of c.tenants.slice(i + 1)) {
        for (const pa of a.repositories) {
          for (const pb of b.repositories) {
            if (overlaps(pa, pb)) ctx.addIssue({ code: 'custom', path: ['tenants', i, 'repositories'], message: `${pa} (${a.name}) overlaps ${pb} (${b.name})` });
          }
        }
      }
    }
  });
export type TenancyConfig = z.infer<typeof TenancyConfig>;

export function ownsRepository(pattern: string, repository: string): boolean {
  return pattern.endsWith('/*') ? repository.startsWith(pattern.slice(0, -1)) : repository === pattern;
}

function overlaps(a: string, b: string): boolean {
  const root = (p: string): string => (p.endsWith('/*') ? p.slice(0, -1) : p);
  return ownsRepository(a, root(b)) || ownsRepository(b, root(a)) || root(a) === root(b);
}

/** The compiled tenancy: who owns what, asked by the intake and the API on every request. */
export class Tenancy {
  private readonly byName: ReadonlyMap<string, TenantConfig>;

  constructor(readonly config: TenancyConfig) {
    this.byName = new Map(config.tenants.map((t) => [t.name, t]));
  }

  static parse(raw: unknown, source = 'tenancy config'): Tenancy {
    return new Tenancy(parseWith(TenancyConfig, raw, source, ErrorCode.E_INVALID_REQUEST));
  }

  static async load(path: string): Promise<Tenancy> {
    const text = await readFile(path, 'utf8').catch((e: unknown) => {
      throw new FleetError(ErrorCode.E_INVALID_REQUEST, `cannot read the tenancy config ${path}: ${e instanceof Error ? e.message : String(e)}`);
    });
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new FleetError(ErrorCode.E_INVALID_REQUEST, `tenancy config ${path} is not JSON: ${e instanceof Error ? e.message : String(e)}`);
    }
    return Tenancy.parse(raw, `tenancy config ${path}`);
  }

  tenant(name: string): TenantConfig | undefined {
    return this.byName.get(name);
  }

  /** The webhook a tenant's notifications go to, if it has one. */
  hookOf(tenant: string): NotificationHook | undefined {
    return tenant === PLATFORM_TENANT ? this.config.platform?.notifications : this.byName.get(tenant)?.notifications;
  }

  /** The tenant owning a repository: the platform for its own prefixes, else the one whose pattern matches. */
  ownerOf(repository: string): string | null {
    if (PLATFORM_PREFIXES.some((p) => repository.startsWith(p))) return PLATFORM_TENANT;
    for (const t of this.config.tenants) if (t.repositories.some((p) => ownsRepository(p, repository))) return t.name;
    return null;
  }
}
