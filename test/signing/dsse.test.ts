import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { keyFingerprint, preAuthEncoding, signDsse, verifyDsse } from '../../signing/dsse.ts';

const TYPE = 'application/vnd.in-toto+json';
const pair = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });
const pem = (k: ReturnType<typeof pair>) => k.publicKey.export({ type: 'spki', format: 'pem' }).toString();

describe('DSSE envelopes', () => {
  it('encodes type and payload with their byte lengths (the spec example)', () => {
    expect(preAuthEncoding('http://example.com/HelloWorld', Buffer.from('hello world')).toString()).toBe('DSSEv1 29 http://example.com/HelloWorld 11 hello world');
  });

  it('verifies with the signing key and gives back the payload', () => {
    const k = pair();
    const env = signDsse(TYPE, Buffer.from('{"a":1}'), k.privateKey);
    expect(verifyDsse(env, pem(k), TYPE)).toEqual({ ok: true, payload: Buffer.from('{"a":1}') });
  });

  it('refuses a changed payload, a changed type, and another key', () => {
    const k = pair();
    const env = signDsse(TYPE, Buffer.from('{"a":1}'), k.privateKey);
    expect(verifyDsse({ ...env, payload: Buffer.from('{"a":2}').toString('base64') }, pem(k), TYPE).ok).toBe(false);
    expect(verifyDsse({ ...env, payloadType: 'text/plain' }, pem(k), 'text/plain').ok).toBe(false);
    expect(verifyDsse(env, pem(k), 'text/plain')).toMatchObject({ ok: false, reason: expect.stringContaining('payload type') as string });
    expect(verifyDsse(env, pem(pair()), TYPE).ok).toBe(false);
  });

  it('names a key by the sha256 of its DER', () => {
    const k = pair();
    expect(keyFingerprint(pem(k))).toMatch(/^sha256:[a-f0-9]{64}$/);
    expect(keyFingerprint(pem(k))).toBe(keyFingerprint(pem(k)));
    expect(keyFingerprint(pem(k))).not.toBe(keyFingerprint(pem(pair())));
  });
});
