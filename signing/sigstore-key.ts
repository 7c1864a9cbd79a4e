import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, scryptSync, type KeyObject } from 'node:crypto';
import nacl from 'tweetnacl';
import { z } from 'zod';
import { ErrorCode, FleetError } from '../protocol/index.ts';

/** scrypt parameters of go-securesystemslib's `encrypted` package, which containers/image reads. */
const SCRYPT = { N: 32768, r: 8, p: 1 } as const;

export interface SigstoreKeyPair {
  /** PEM `ENCRYPTED SIGSTORE PRIVATE KEY`, what `--sign-by-sigstore-private-key` reads */
  privateKeyPem: string;
  /** PEM `PUBLIC KEY`, what a `sigstoreSigned` policy's `keyPath` names */
  publicKeyPem: string;
}

/**
 * Generates a sigstore signing key pair in the format `skopeo generate-sigstore-key` writes
 * (Debian's skopeo 1.9 predates that command): an ECDSA P-256 key, PKCS#8, encrypted with
 * scrypt + NaCl secretbox under the passphrase.
 */
export function generateSigstoreKeyPair(passphrase: string): SigstoreKeyPair {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'der' });
  const salt = randomBytes(32);
  const nonce = randomBytes(nacl.secretbox.nonceLength);
  const key = scryptSync(passphrase, salt, nacl.secretbox.keyLength, { ...SCRYPT, maxmem: 64 * 1024 * 1024 });
  const sealed = nacl.secretbox(new Uint8Array(pkcs8), new Uint8Array(nonce), new Uint8Array(key));
  const envelope = JSON.stringify({
    kdf: { name: 'scrypt', params: SCRYPT, salt: salt.toString('base64') },
    cipher: { name: 'nacl/secretbox', nonce: nonce.toString('base64') },
    ciphertext: Buffer.from(sealed).toString('base64'),
  });
  return {
    privateKeyPem: pem('ENCRYPTED SIGSTORE PRIVATE KEY', Buffer.from(envelope)),
    publicKeyPem: createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString(),
  };
}

function pem(type: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${type}-----\n${lines.join('\n')}\n-----END ${type}-----\n`;
}

const Envelope = z.object({
  kdf: z.object({ name: z.literal('scrypt'), params: z.object({ N: z.number().int(), r: z.number().int(), p: z.number().int() }), salt: z.string() }),
  cipher: z.object({ name: z.literal('nacl/secretbox'), nonce: z.string() }),
  ciphertext: z.string(),
});

/** Opens a key written by {@link generateSigstoreKeyPair} (or `skopeo generate-sigstore-key`). */
export function openSigstorePrivateKey(pemText: string, passphrase: string): KeyObject {
  const m = /-----BEGIN (?:ENCRYPTED SIGSTORE|ENCRYPTED COSIGN) PRIVATE KEY-----([\s\S]+?)-----END/.exec(pemText);
  if (m?.[1] === undefined) throw new FleetError(ErrorCode.E_INTERNAL, 'not an encrypted sigstore private key');
  const env = Envelope.parse(JSON.parse(Buffer.from(m[1].replace(/\s+/g, ''), 'base64').toString('utf8')));
  const { N, r, p } = env.kdf.params;
  const key = scryptSync(passphrase, Buffer.from(env.kdf.salt, 'base64'), nacl.secretbox.keyLength, { N, r, p, maxmem: 256 * N * r });
  const opened = nacl.secretbox.open(Buffer.from(env.ciphertext, 'base64'), Buffer.from(env.cipher.nonce, 'base64'), new Uint8Array(key));
  if (opened === null) throw new FleetError(ErrorCode.E_INTERNAL, 'wrong passphrase for the sigstore private key');
  return createPrivateKey({ key: Buffer.from(opened), format: 'der', type: 'pkcs8' });
}
