import { describe, expect, it } from 'vitest';
import { signaturePolicy, sigstoreAttachments } from '../../node/signature-policy.ts';
import { buildahBudArgs } from '../../worker/builders/buildah.ts';

describe('containers signature policy for official bases', () => {
  it('requires the platform key on each signed namespace of the registry and accepts anything else', () => {
    expect(signaturePolicy('r:5000', ['official/', 'platform/'], '/keys/official.pub')).toEqual({
      default: [{ type: 'insecureAcceptAnything' }],
      transports: {
        docker: {
          'r:5000/official': [{ type: 'sigstoreSigned', keyPath: '/keys/official.pub', signedIdentity: { type: 'matchRepository' } }],
          'r:5000/platform': [{ type: 'sigstoreSigned', keyPath: '/keys/official.pub', signedIdentity: { type: 'matchRepository' } }],
        },
      },
    });
  });

  it('turns on sigstore attachments for that registry only', () => {
    expect(sigstoreAttachments('r:5000')).toBe('docker:\n  "r:5000":\n    use-sigstore-attachments: true\n');
  });

  it('hands buildah the registries.d dir as a global flag and the policy to bud', () => {
    const plan = { buildId: 'b', contextDir: '/c', dockerfile: '/c/Dockerfile', buildArgs: {}, secrets: {}, labels: {}, destinations: ['r:5000/app/x:1'], workDir: '/w' };
    const args = buildahBudArgs(plan, 'localhost/t:latest', 'none', {}, { policyPath: '/w/p/policy.json', registriesDir: '/w/p/registries.d' });
    expect(args.slice(0, 5)).toEqual(['--registries-conf-dir', '/w/p/registries.d', 'bud', '--signature-policy', '/w/p/policy.json']);
    expect(buildahBudArgs(plan, 'localhost/t:latest', 'none')[0]).toBe('bud');
  });
});
