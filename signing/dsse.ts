import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { z } from 'zod';

/**
 * DSSE (Dead Simple Signing Envelope), the envelope in-toto attestations travel in and cosign
 * reads: the signature covers the pre-authentication encoding of payload type and payload, so
 * neither can be swapped. Signatures are ECDSA P-256 over SHA-256, ASN.1 DER, like the platform's
 * image signatures (the same key).
 */
export const DsseEnvelope = z.object({
  payloadType: z.string().min(1),
  /** base64 of the payload bytes */
  payload: z.string(),
  signatures: z.array(z.object({ keyid: z.string().optional(), sig: z.string().min(1) })).min(1),
});
export type DsseEnvelope = z.infer<typeof DsseEnvelope>;

/** `DSSEv1 <len(type)> <type> <len(body)> <body>` (lengths in ASCII decimal bytes). */
export function preAuthEncoding(payloadType: string, payload: Uint8Array): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${payload.length} `), payload]);
}

/**
 * Signs `payload`. The key id is left empty: cosign and the DSSE reference verifier match a
 * non-empty id against their own idea of the key's id, and a consumer names the key anyway.
 */
export function signDsse(payloadType: string, payload: Uint8Array, key: KeyObject): DsseEnvelope {
  const sig = sign('sha256', preAuthEncoding(payloadType, payload), key).toString('base64');
  return { payloadType, payload: Buffer.from(payload).toString('base64'), signatures: [{ keyid: '', sig }] };
}

export type DsseCheck = { ok: true; payload: Buffer } | { ok: false; reason: string };

/** The payload, when one of the envelope's signatures verifies with `publicKeyPem` and the type is the expected one. */
export function verifyDsse(envelope: DsseEnvelope, publicKeyPem: string, payloadType: string): DsseCheck {
  if (envelope.payloadType !== payloadType) return { ok: false, reason: `payload type is ${envelope.payloadType}, not ${payloadType}` };
  const payload = Buffer.from(envelope.payload, 'base64');
  const key = createPublicKey(publicKeyPem);
  const pae = preAuthEncoding(envelope.payloadType, payload);
  for (const s of envelope.signatures) {
    if (verify('sha256', pae, key, Buffer.from(s.sig, 'base64'))) return { ok: true, payload };
  }
  return { ok: false, reason: 'no signature verifies with the platform public key (tampered, or signed by another key)' };
}

/** sha256 of the public key's DER (SubjectPublicKeyInfo): a stable name for "which key" in summaries. */
export function keyFingerprint(publicKeyPem: string): string {
  const der = createPublicKey(publicKeyPem).export({ type: 'spki', format: 'der' });
  return `sha256:${createHash('sha256').update(der).digest('hex')}`;
}
