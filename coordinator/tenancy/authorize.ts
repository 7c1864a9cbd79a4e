import { ErrorCode, FleetError, PLATFORM_TENANT, type BuildRequest, type Identity } from '../../protocol/index.ts';
import type { Tenancy } from './tenants.ts';

/** Who is asking, as the API and the intake see it (HTTP token, OIDC subject or NATS user). */
export type Caller = Pick<Identity, 'subject' | 'tenant' | 'role'>;

/** The platform's own identity (local admin, rebuilds on base updates): everything, any tenant. */
export const PLATFORM_ADMIN: Caller = { subject: 'platform', tenant: PLATFORM_TENANT, role: 'admin' };

function forbidden(path: string, message: string): FleetError {
  return new FleetError(ErrorCode.E_FORBIDDEN, `forbidden: ${path}: ${message}`, { issues: [{ path, message }] });
}

/**
 * Only the platform's admins act for every tenant. An `admin` token issued for another tenant
 * stays inside that tenant (there it may do what a submitter may): its role must not turn a
 * team's credential into the whole platform's.
 */
function isPlatformAdmin(caller: Caller): boolean {
  return caller.role === 'admin' && caller.tenant === PLATFORM_TENANT;
}

/**
 * May `caller` submit `request`? Refuses with E_FORBIDDEN naming the first field that is not
 * allowed. A submitter builds only into its tenant's repositories, on its tenant's pools, with the
 * secrets granted to its tenant on that pool, within its limits; a platform admin may do anything.
 */
export function authorizeSubmit(caller: Caller, request: BuildRequest, tenancy: Tenancy): void {
  if (isPlatformAdmin(caller)) return;
  if (caller.role === 'reader') throw forbidden('role', `${caller.role} may read builds but not submit them`);
  const tenant = tenancy.tenant(caller.tenant);
  if (tenant === undefined) throw forbidden('tenant', `tenant ${caller.tenant} is not configured on this platform`);
  const repo = request.image.repository;
  const owner = tenancy.ownerOf(repo);
  if (owner !== caller.tenant) throw forbidden('image.repository', `${repo} is owned by ${owner === null ? 'no tenant' : `tenant ${owner}`}`);
  const base = request.standard?.base;
  if (base !== undefined) {
    const baseRepo = base.slice(0, base.lastIndexOf(':'));
    const baseOwner = tenancy.ownerOf(baseRepo);
    if (baseOwner !== caller.tenant) throw forbidden('standard.base', `${baseRepo} is owned by ${baseOwner === null ? 'no tenant' : `tenant ${baseOwner}`}`);
  }
  if (!tenant.pools.includes(request.pool)) throw forbidden('pool', `tenant ${tenant.name} may use ${tenant.pools.join(', ')}, not ${request.pool}`);
  const granted = tenant.secrets[request.pool] ?? [];
  request.secrets.forEach((id, i) => {
    if (!granted.includes(id)) throw forbidden(`secrets.${i}`, `secret "${id}" is not granted to tenant ${tenant.name} on pool ${request.pool}`);
  });
  const max = tenant.limits.maxRunTimeoutSeconds;
  if (max !== undefined && request.timeoutSeconds !== undefined && request.timeoutSeconds > max) {
    throw forbidden('timeoutSeconds', `at most ${max} for tenant ${tenant.name}`);
  }
}

/** A build is seen (status, log, events) and cancelled only by its tenant and by platform admins. */
export function mayAccess(caller: Caller, buildTenant: string, action: 'read' | 'cancel'): boolean {
  if (isPlatformAdmin(caller)) return true;
  if (caller.tenant !== buildTenant) return false;
  return action === 'read' || caller.role !== 'reader';
}

export function authorizeAccess(caller: Caller, build: { id: string; tenant: string }, action: 'read' | 'cancel'): void {
  if (mayAccess(caller, build.tenant, action)) return;
  // Another tenant's build is answered as absent: its existence is not the caller's business.
  if (caller.tenant !== build.tenant) throw new FleetError(ErrorCode.E_NOT_FOUND, `no build with id ${build.id}`);
  throw forbidden('role', `${caller.role} may not ${action} builds`);
}
