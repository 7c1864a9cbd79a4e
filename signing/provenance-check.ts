import { DSSE_ENVELOPE_MEDIA_TYPE, ErrorCode, FleetError, IN_TOTO_PAYLOAD_TYPE, ProvenanceStatement } from '../protocol/index.ts';
import type { RegistryClient } from '../adapters/registry-client.ts';
import { readAttachment } from './attachments.ts';
import { DsseEnvelope, verifyDsse } from './dsse.ts';

export interface VerifiedProvenance {
  statement: ProvenanceStatement;
  /** digest of the attestation's artifact manifest */
  attestation: string;
}

/**
 * Reads `repository@digest`'s provenance attestation from the registry and believes it only when
 * a DSSE signature verifies with `publicKeyPem`, the payload is a SLSA v1 in-toto statement and
 * its subject is this very digest (an attestation copied from another image proves nothing).
 * E_NOT_FOUND without one; E_ATTESTATION_INVALID for one that fails any check.
 */
export async function verifyProvenance(registry: RegistryClient, repository: string, digest: string, publicKeyPem: string, signal?: AbortSignal): Promise<VerifiedProvenance> {
  const where = `${registry.endpoint.host}/${repository}@${digest}`;
  const found = await readAttachment(registry, repository, digest, 'att', DSSE_ENVELOPE_MEDIA_TYPE, signal);
  if (found === null) throw new FleetError(ErrorCode.E_NOT_FOUND, `no provenance attestation for ${where}`);
  const reasons: string[] = [];
  for (const layer of found.layers) {
    if (layer.mediaType !== DSSE_ENVELOPE_MEDIA_TYPE) continue;
    const envelope = DsseEnvelope.safeParse(parseJson(layer.bytes));
    if (!envelope.success) {
      reasons.push('a layer is not a DSSE envelope');
      continue;
    }
    const checked = verifyDsse(envelope.data, publicKeyPem, IN_TOTO_PAYLOAD_TYPE);
    if (!checked.ok) {
      reasons.push(checked.reason);
      continue;
    }
    const statement = ProvenanceStatement.safeParse(parseJson(checked.payload));
    if (!statement.success) {
      reasons.push('the signed payload is not a SLSA v1 provenance statement');
      continue;
    }
    const hex = digest.slice('sha256:'.length);
    if (!statement.data.subject.some((s) => s.digest.sha256 === hex)) {
      reasons.push(`the signed statement is about ${statement.data.subject.map((s) => `${s.name}@sha256:${s.digest.sha256 ?? '?'}`).join(', ')}, not ${digest}`);
      continue;
    }
    return { statement: statement.data, attestation: found.digest };
  }
  throw new FleetError(ErrorCode.E_ATTESTATION_INVALID, `provenance of ${where} refused: ${reasons.join('; ') || 'no DSSE envelope in the attestation'}`);
}

function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return null;
  }
}
