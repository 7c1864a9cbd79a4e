import { describe, expect, it } from 'vitest';
import { BuildRequest, ErrorCode, isFleetError } from '../../../protocol/index.ts';
import { authorizeAccess, authorizeSubmit, type Caller } from '../../../coordinator/tenancy/authorize.ts';
import { Tenancy } from '../../../coordinator/tenancy/tenants.ts';

const tenancy = Tenancy.parse({
  tenants: [
    { name: 'payments', repositories: ['app/payments/*', 'bases/payments/*'], pools: ['default', 'java'], secrets: { default: ['npm-token'] }, limits: { maxRunTimeoutSeconds: 600 } },
    { name: 'search', repositories: ['app/search/*'], pools: ['default'] },
  ],
});
const payments: Caller = { subject: 'ci-payments', tenant: 'payments', role: 'submitter' };
const reader: Caller = { subject: 'dev', tenant: 'payments', role: 'reader' };
const admin: Caller = { subject: 'ops', tenant: 'platform', role: 'admin' };

const request = (over: Record<string, unknown> = {}) =>
  BuildRequest.parse({ id: 'b1', context: { digest: `sha256:${'a'.repeat(64)}` }, image: { repository: 'app/payments/api', tags: ['1'] }, ...over });

function refusal(fn: () => void): { code: string; path: string | undefined; message: string } {
  try {
    fn();
  } catch (e) {
    if (!isFleetError(e)) throw e;
    return { code: e.code, path: e.details?.issues?.[0]?.path, message: e.message };
  }
  throw new Error('expected a refusal');
}

describe('who may submit what', () => {
  it('lets a submitter build into its own repositories, pools and granted secrets', () => {
    expect(() => authorizeSubmit(payments, request({ secrets: ['npm-token'], timeoutSeconds: 600 }), tenancy)).not.toThrow();
    expect(() => authorizeSubmit(payments, request({ kind: 'custom-base', image: { repository: 'bases/payments/jdk', tags: ['1'] } }), tenancy)).not.toThrow();
  });

  it("refuses another tenant's repository, naming the field and the owner", () => {
    expect(refusal(() => authorizeSubmit(payments, request({ image: { repository: 'app/search/web', tags: ['1'] } }), tenancy))).toEqual({
      code: ErrorCode.E_FORBIDDEN,
      path: 'image.repository',
      message: 'forbidden: image.repository: app/search/web is owned by tenant search',
    });
    expect(refusal(() => authorizeSubmit(payments, request({ image: { repository: 'app/nobody', tags: ['1'] } }), tenancy)).message).toMatch(/owned by no tenant/);
  });

  it('refuses a pool, a secret or a timeout the tenant was not granted', () => {
    expect(refusal(() => authorizeSubmit({ ...payments, tenant: 'search' }, request({ image: { repository: 'app/search/web', tags: ['1'] }, pool: 'java' }), tenancy)).path).toBe('pool');
    expect(refusal(() => authorizeSubmit(payments, request({ secrets: ['npm-token', 'prod-db'] }), tenancy))).toMatchObject({ path: 'secrets.1', code: 'E_FORBIDDEN' });
    expect(refusal(() => authorizeSubmit(payments, request({ pool: 'java', secrets: ['npm-token'] }), tenancy)).path).toBe('secrets.0');
    expect(refusal(() => authorizeSubmit(payments, request({ timeoutSeconds: 601 }), tenancy)).path).toBe('timeoutSeconds');
  });

  it("refuses a standard build on another tenant's custom base", () => {
    const std = request({ kind: 'standard', standard: { runtime: 'java17', environment: 'test', base: 'bases/search/jdk:1' } });
    expect(refusal(() => authorizeSubmit(payments, std, tenancy)).path).toBe('standard.base');
  });

  it('refuses readers and unconfigured tenants; lets admins do anything', () => {
    expect(refusal(() => authorizeSubmit(reader, request(), tenancy)).path).toBe('role');
    expect(refusal(() => authorizeSubmit({ ...payments, tenant: 'ghost' }, request(), tenancy)).path).toBe('tenant');
    expect(() => authorizeSubmit(admin, request({ image: { repository: 'app/anyone', tags: ['1'] } }), tenancy)).not.toThrow();
  });
});

describe('who may see and cancel a build', () => {
  it("answers another tenant's build as absent", () => {
    expect(refusal(() => authorizeAccess({ ...payments, tenant: 'search' }, { id: 'b1', tenant: 'payments' }, 'read')).code).toBe('E_NOT_FOUND');
  });

  it('lets readers read but not cancel, submitters both, admins everything', () => {
    expect(() => authorizeAccess(reader, { id: 'b1', tenant: 'payments' }, 'read')).not.toThrow();
    expect(refusal(() => authorizeAccess(reader, { id: 'b1', tenant: 'payments' }, 'cancel')).code).toBe('E_FORBIDDEN');
    expect(() => authorizeAccess(payments, { id: 'b1', tenant: 'payments' }, 'cancel')).not.toThrow();
    expect(() => authorizeAccess(admin, { id: 'b1', tenant: 'search' }, 'cancel')).not.toThrow();
  });
});

describe('tenancy config', () => {
  it('refuses overlapping ownership, platform prefixes and a tenant named platform', () => {
    const bad = (tenants: unknown[]) => () => Tenancy.parse({ tenants });
    expect(bad([{ name: 'a', repositories: ['app/*'], pools: ['default'] }, { name: 'b', repositories: ['app/b/*'], pools: ['default'] }])).toThrow(/overlaps/);
    expect(bad([{ name: 'a', repositories: ['official/*'], pools: ['default'] }])).toThrow(/belong to the platform/);
    expect(bad([{ name: 'platform', repositories: ['x/*'], pools: ['default'] }])).toThrow(/platform's own tenant/);
  });

  it('gives the platform its prefixes and nobody an unowned repository', () => {
    expect(tenancy.ownerOf('cache/app/payments/api')).toBe('platform');
    expect(tenancy.ownerOf('app/payments/api')).toBe('payments');
    expect(tenancy.ownerOf('app/paymentsx')).toBeNull();
  });
});
