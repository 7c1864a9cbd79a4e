import { z } from 'zod';
import { Digest } from './fields.ts';

/**
 * One image a build's FROM lines pulled, as the worker resolved it: `name` is the FROM reference
 * after build-arg expansion (the tag form a rebuild watches, e.g. `127.0.0.1:5000/official/base:1`),
 * `digest` the sha256 of the manifest the build used. Stage names and `scratch` are not bases.
 */
export const BaseImage = z.strictObject({
  name: z.string().min(1).max(512),
  digest: Digest,
});
export type BaseImage = z.infer<typeof BaseImage>;

export const IN_TOTO_STATEMENT_V1 = 'https://in-toto.io/Statement/v1';
export const SLSA_PROVENANCE_V1 = 'https://slsa.dev/provenance/v1';
/** DSSE payload type of an in-toto statement */
export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
/** media type of a layer holding a DSSE envelope (what cosign writes and reads) */
export const DSSE_ENVELOPE_MEDIA_TYPE = 'application/vnd.dsse.envelope.v1+json';
/** the build type of every fleet build: what `externalParameters` mean is defined in docs/provenance.md */
export const FLEET_BUILD_TYPE = 'https://fleetbuild.dev/provenance/dockerfile-build/v1';

/** SLSA's ResourceDescriptor: an artifact by URI, name and digests, maybe with annotations. */
export const ResourceDescriptor = z.object({
  uri: z.string().optional(),
  name: z.string().optional(),
  digest: z.record(z.string(), z.string()).optional(),
  mediaType: z.string().optional(),
  annotations: z.record(z.string(), z.unknown()).optional(),
});
export type ResourceDescriptor = z.infer<typeof ResourceDescriptor>;

/** The SLSA v1 provenance predicate, as far as the fleet writes and reads it. */
export const SlsaProvenance = z.object({
  buildDefinition: z.object({
    buildType: z.string(),
    externalParameters: z.record(z.string(), z.unknown()),
    internalParameters: z.record(z.string(), z.unknown()).optional(),
    resolvedDependencies: z.array(ResourceDescriptor).default([]),
  }),
  runDetails: z.object({
    builder: z.object({ id: z.string(), version: z.record(z.string(), z.string()).optional() }),
    metadata: z.object({ invocationId: z.string().optional(), startedOn: z.string().optional(), finishedOn: z.string().optional() }).optional(),
    byproducts: z.array(ResourceDescriptor).optional(),
  }),
});
export type SlsaProvenance = z.infer<typeof SlsaProvenance>;

/** An in-toto Statement v1 about images (by sha256). */
export const ProvenanceStatement = z.object({
  _type: z.literal(IN_TOTO_STATEMENT_V1),
  subject: z.array(z.object({ name: z.string(), digest: z.record(z.string(), z.string()) })).min(1),
  predicateType: z.literal(SLSA_PROVENANCE_V1),
  predicate: SlsaProvenance,
});
export type ProvenanceStatement = z.infer<typeof ProvenanceStatement>;

/** Where an attachment (attestation, SBOM) of a promoted image is in the registry. */
export const StoredArtifact = z.object({
  /** `host/repository@sha256:…` of the artifact manifest */
  reference: z.string(),
  /** OCI referrers API, or the `sha256-<hex>.att|.sbom` tag scheme */
  storedAs: z.enum(['referrers', 'tag']),
});

/** The provenance summary kept in the build record (the attestation itself is in the registry). */
export const ProvenanceSummary = z.object({
  predicateType: z.string(),
  attestation: StoredArtifact,
  /** sha256 of the signing public key's DER: which key signed it */
  signedBy: z.string(),
  /** the SBOM of the image, when one was attached */
  sbom: StoredArtifact.extend({ format: z.string() }).optional(),
});
export type ProvenanceSummary = z.infer<typeof ProvenanceSummary>;
