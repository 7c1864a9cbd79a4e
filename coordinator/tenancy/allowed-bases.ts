import { PLATFORM_TENANT, type AllowedBase } from '../../protocol/index.ts';
import type { GatePolicy } from '../gates/policy.ts';
import type { Tenancy } from './tenants.ts';

/** The platform's signed images: official bases, and platform service images a standard build copies from (e.g. platform/jacoco). */
const PLATFORM_IMAGES = ['official/*', 'platform/*'];

/**
 * The bases a tenant's builds may use, as the job carries them to the worker (which checks every
 * FROM against them after build args, before any pull): the official and platform images and the tenant's own
 * repositories in the fleet's registry, the platform tenant the whole registry, and whatever the
 * gate policy's `bases.allowed` grants every tenant or this one.
 */
export function allowedBasesFor(tenant: string, tenancy: Tenancy, policy: GatePolicy['bases'], registryHost: string): AllowedBase[] {
  const own: AllowedBase =
    tenant === PLATFORM_TENANT ? { registry: registryHost } : { registry: registryHost, repositories: [...PLATFORM_IMAGES, ...(tenancy.tenant(tenant)?.repositories ?? [])] };
  const granted = policy.allowed
    .filter((a) => a.tenants === undefined || a.tenants.includes(tenant))
    .map(({ registry, repositories }): AllowedBase => (repositories === undefined ? { registry } : { registry, repositories }));
  return [own, ...granted];
}
