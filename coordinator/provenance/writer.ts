import { ErrorCode, FleetError, DSSE_ENVELOPE_MEDIA_TYPE, IN_TOTO_PAYLOAD_TYPE, SLSA_PROVENANCE_V1, type ProvenanceSummary, type ResourceDescriptor } from '../../protocol/index.ts';
import { sha256, type RegistryClient } from '../../adapters/registry-client.ts';
import { signDsse, keyFingerprint } from '../../signing/dsse.ts';
import { prepareAttachment, putPrepared, type PreparedAttachment } from '../../signing/attachments.ts';
import type { PlatformSigningKey } from './signing-key.ts';
import { CYCLONEDX_JSON, LayerDpkgCache, cycloneDx, imageDpkgLayers, imagePackages } from './sbom.ts';
import { provenanceStatement, type ProvenanceFacts } from './statement.ts';

const SBOM_READ_TIMEOUT_MS = 10 * 60_000;

/** cosign's attestation layers carry an (empty) signature annotation and the predicate type. */
const COSIGN_SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';

/**
 * Signs a promoted image's provenance (and attaches its SBOM) with the platform key and stores it in the release
 * repository next to the image. Runs before the release tags move, so a promoted image always
 * has its attestation; a failure here fails the report's processing, which is retried like any
 * registry outage.
 */
export class ProvenanceWriter {
  private readonly signedBy: string;
  private readonly layers = new LayerDpkgCache();

  constructor(
    private readonly registry: RegistryClient,
    private readonly signing: PlatformSigningKey,
    /** what the SBOM names as its generator */
    private readonly tool: { name: string; version: string } = { name: 'fleetbuild-coordinator', version: 'unknown' },
    /** told of each layer read from the registry: ahead of a build's push, or for its SBOM */
    private readonly onLayerRead: (when: 'ahead' | 'sbom') => void = () => {},
  ) {
    this.signedBy = keyFingerprint(signing.publicKeyPem);
  }

  async write(facts: ProvenanceFacts, quarantineRepository: string, signal?: AbortSignal): Promise<ProvenanceSummary> {
    const manifest = await this.registry.manifest(quarantineRepository, facts.digest, signal);
    if (manifest === null) throw new FleetError(ErrorCode.E_NOT_FOUND, `quarantined image ${quarantineRepository}@${facts.digest} is gone`);
    const subject = { digest: facts.digest, mediaType: manifest.mediaType, size: manifest.bytes.length };
    const repository = facts.record.request.image.repository;
    // The SBOM's digest goes into the signed statement, so the signature covers it too. Its
    // manifest's digest (where it will be) is known before it is pushed: both go up at once.
    const sbom = await this.prepareSbom(facts, quarantineRepository, subject, signal);
    const statement = provenanceStatement({ ...facts, sbom: sbom.descriptor });
    const envelope = signDsse(IN_TOTO_PAYLOAD_TYPE, Buffer.from(JSON.stringify(statement)), this.signing.key);
    const attestation = prepareAttachment(this.registry.endpoint.host, repository, subject, 'att', DSSE_ENVELOPE_MEDIA_TYPE, {
      mediaType: DSSE_ENVELOPE_MEDIA_TYPE,
      bytes: Buffer.from(JSON.stringify(envelope)),
      annotations: { [COSIGN_SIGNATURE_ANNOTATION]: '', predicateType: SLSA_PROVENANCE_V1 },
    });
    const [sbomStored, stored] = await Promise.all([putPrepared(this.registry, sbom.prepared, signal), putPrepared(this.registry, attestation, signal)]);
    return {
      predicateType: SLSA_PROVENANCE_V1,
      attestation: { reference: stored.reference, storedAs: stored.storedAs },
      signedBy: this.signedBy,
      sbom: { reference: sbomStored.reference, storedAs: sbomStored.storedAs, format: 'CycloneDX 1.5 JSON' },
    };
  }

  /**
   * Reads a base image's layers into the layer cache, so the SBOM of an image built on it finds
   * them read already; its packages are not worked out (the SBOM does that for the image).
   */
  async readAhead(repository: string, digest: string): Promise<void> {
    await imageDpkgLayers(this.registry, repository, digest, this.layers, AbortSignal.timeout(SBOM_READ_TIMEOUT_MS), () => this.onLayerRead('ahead'));
  }

  /** A CycloneDX SBOM of the image's Debian packages, to attach next to it (`.sbom` tag or referrers). */
  private async prepareSbom(
    facts: ProvenanceFacts,
    quarantineRepository: string,
    subject: { digest: string; mediaType: string; size: number },
    signal?: AbortSignal,
  ): Promise<{ descriptor: ResourceDescriptor; prepared: PreparedAttachment }> {
    // Layers are streamed whole: on a busy machine that outlasts the registry client's 30 s default.
    const packages = await imagePackages(this.registry, quarantineRepository, facts.digest, this.layers, signal ?? AbortSignal.timeout(SBOM_READ_TIMEOUT_MS), () => this.onLayerRead('sbom'));
    const name = `${facts.registry}/${facts.record.request.image.repository}`;
    const bytes = Buffer.from(JSON.stringify(cycloneDx({ name, digest: facts.digest }, packages, this.tool, facts.finishedOn)));
    const prepared = prepareAttachment(this.registry.endpoint.host, facts.record.request.image.repository, subject, 'sbom', CYCLONEDX_JSON, { mediaType: CYCLONEDX_JSON, bytes });
    return {
      descriptor: { name: 'sbom', uri: `oci://${prepared.reference}`, mediaType: CYCLONEDX_JSON, digest: { sha256: sha256(bytes).slice('sha256:'.length) } },
      prepared,
    };
  }
}
