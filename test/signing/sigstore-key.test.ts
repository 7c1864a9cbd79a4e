import { sign, verify, createPublicKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { generateSigstoreKeyPair, openSigstorePrivateKey } from '../../signing/sigstore-key.ts';

describe('sigstore keys', () => {
  it('opens a generated key with its passphrase and the halves match', () => {
    const pair = generateSigstoreKeyPair('pass phrase');
    expect(pair.privateKeyPem).toMatch(/^-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n/);
    const key = openSigstorePrivateKey(pair.privateKeyPem, 'pass phrase');
    const sig = sign('sha256', Buffer.from('payload'), key);
    expect(verify('sha256', Buffer.from('payload'), createPublicKey(pair.publicKeyPem), sig)).toBe(true);
  });
  it('refuses a wrong passphrase', () => {
    const pair = generateSigstoreKeyPair('right');
    expect(() => openSigstorePrivateKey(pair.privateKeyPem, 'wrong')).toThrow(/wrong passphrase/);
  });
});
