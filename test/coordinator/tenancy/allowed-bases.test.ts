import { describe, expect, it } from 'vitest';
import { GatePolicy } from '../../../coordinator/gates/policy.ts';
import { allowedBasesFor } from '../../../coordinator/tenancy/allowed-bases.ts';
import { Tenancy } from '../../../coordinator/tenancy/tenants.ts';

const tenancy = Tenancy.parse({
  tenants: [
    { name: 'payments', repositories: ['app/payments/*', 'bases/payments/*'], pools: ['default'] },
    { name: 'search', repositories: ['app/search'], pools: ['default'] },
  ],
});

const policy = (bases: unknown): GatePolicy =>
  GatePolicy.parse({ officialBases: ['official/base:1'], gates: {}, ...(bases === undefined ? {} : { bases }) });

describe('the bases a tenant may build on', () => {
  it('by default: the official and platform images and its own repositories in the fleet\'s registry; the platform the whole registry', () => {
    const none = policy(undefined).bases;
    expect(none).toEqual({ allowed: [] });
    expect(allowedBasesFor('payments', tenancy, none, 'r:5000')).toEqual([{ registry: 'r:5000', repositories: ['official/*', 'platform/*', 'app/payments/*', 'bases/payments/*'] }]);
    expect(allowedBasesFor('search', tenancy, none, 'r:5000')).toEqual([{ registry: 'r:5000', repositories: ['official/*', 'platform/*', 'app/search'] }]);
    expect(allowedBasesFor('platform', tenancy, none, 'r:5000')).toEqual([{ registry: 'r:5000' }]);
  });

  it('plus what the gate policy grants every tenant or this one', () => {
    const bases = policy({
      allowed: [
        { registry: 'docker.io', repositories: ['library/*'] },
        { registry: 'ghcr.io', repositories: ['payments-org/*'], tenants: ['payments'] },
      ],
    }).bases;
    expect(allowedBasesFor('payments', tenancy, bases, 'r:5000').slice(1)).toEqual([
      { registry: 'docker.io', repositories: ['library/*'] },
      { registry: 'ghcr.io', repositories: ['payments-org/*'] },
    ]);
    expect(allowedBasesFor('search', tenancy, bases, 'r:5000').slice(1)).toEqual([{ registry: 'docker.io', repositories: ['library/*'] }]);
  });

  it('refuses a policy entry that is no registry host or no repository pattern', () => {
    expect(() => policy({ allowed: [{ registry: 'docker.io/library' }] })).toThrow();
    expect(() => policy({ allowed: [{ registry: 'docker.io', repositories: ['Library/*'] }] })).toThrow();
  });
});
