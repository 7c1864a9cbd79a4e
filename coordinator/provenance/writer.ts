import { ErrorCode, FleetError, DSSE_ENVELOPE_MEDIA_TYPE, IN_TOTO_PAYLOAD_TYPE, SLSA_PROVENANCE_V1, type ProvenanceSummary } from '../../protocol/index.ts';
import type { RegistryClient } from '../../adapters/registry-client.ts';
import { signDsse, keyFingerprint } from '../../signing/dsse.ts';
import { putAttachment } from '../../signing/attachments.ts';
import type { PlatformSigningKey } from './signing-key.ts';
import { provenanceStatement, type ProvenanceFacts } from './statement.ts';

/** cosign's attestation layers carry an (empty) signature annotation and the predicate type. */
const COSIGN_SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';

/**
 * Signs a promoted image's provenance with the platform key and stores it in the release
 * repository next to the image. Runs before the release tags move, so a promoted image always
 * has its attestation; a failure here fails the report's processing, which is retried like any
 * registry outage.
 */
export class ProvenanceWriter {
  private readonly signedBy: string;

  constructor(
    private readonly registry: RegistryClient,
    private readonly signing: PlatformSigningKey,
  ) {
    this.signedBy = keyFingerprint(signing.publicKeyPem);
  }

  async write(facts: ProvenanceFacts, quarantineRepository: string, signal?: AbortSignal): Promise<ProvenanceSummary> {
    const manifest = await this.registry.manifest(quarantineRepository, facts.digest, signal);
    if (manifest === null) throw new FleetError(ErrorCode.E_NOT_FOUND, `quarantined image ${quarantineRepository}@${facts.digest} is gone`);
    const statement = provenanceStatement(facts);
    const envelope = signDsse(IN_TOTO_PAYLOAD_TYPE, Buffer.from(JSON.stringify(statement)), this.signing.key);
    const stored = await putAttachment(
      this.registry,
      facts.record.request.image.repository,
      { digest: facts.digest, mediaType: manifest.mediaType, size: manifest.bytes.length },
      'att',
      DSSE_ENVELOPE_MEDIA_TYPE,
      { mediaType: DSSE_ENVELOPE_MEDIA_TYPE, bytes: Buffer.from(JSON.stringify(envelope)), annotations: { [COSIGN_SIGNATURE_ANNOTATION]: '', predicateType: SLSA_PROVENANCE_V1 } },
      signal,
    );
    return { predicateType: SLSA_PROVENANCE_V1, attestation: { reference: stored.reference, storedAs: stored.storedAs }, signedBy: this.signedBy };
  }
}
