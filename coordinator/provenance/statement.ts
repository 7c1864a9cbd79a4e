import {
  FLEET_BUILD_TYPE,
  IN_TOTO_STATEMENT_V1,
  SLSA_PROVENANCE_V1,
  type BaseImage,
  type BuildRecord,
  type ProvenanceStatement,
  type ResourceDescriptor,
  type Verdict,
} from '../../protocol/index.ts';

/** What the coordinator knows about one promoted build when it writes its provenance. */
export interface ProvenanceFacts {
  record: BuildRecord;
  /** registry host the image is in */
  registry: string;
  digest: string;
  attempt: number;
  workerId: string;
  /** the worker's builder kind and version, as it announced them (unknown once it is gone) */
  builder: { kind: string; version: string };
  bases: readonly BaseImage[];
  startedOn?: string | undefined;
  finishedOn: string;
  verdict: Verdict;
  /** the SBOM attached next to the image, named (with its digest) among the byproducts */
  sbom?: ResourceDescriptor | undefined;
}

/** `sha256:abc` → `{ sha256: 'abc' }`, the digest set in-toto uses. */
function digestSet(digest: string): Record<string, string> {
  const [algorithm, hex] = digest.split(':') as [string, string];
  return { [algorithm]: hex };
}

/**
 * The in-toto Statement v1 with a SLSA v1 provenance predicate for a promoted image. External
 * parameters are what the requester controlled; build args by name only, because their values
 * may be secrets the masker hides from logs. The gates' verdict and the scan summary travel as a
 * byproduct, so a consumer sees what the image passed without trusting the fleet's API.
 */
export function provenanceStatement(f: ProvenanceFacts): ProvenanceStatement {
  const request = f.record.request;
  const repository = `${f.registry}/${request.image.repository}`;
  const external: Record<string, unknown> = {
    request: {
      id: request.id,
      tenant: f.record.tenant,
      kind: request.kind,
      repository: request.image.repository,
      tags: request.image.tags,
      pool: request.pool,
      dockerfile: request.dockerfile,
      ...(request.target === undefined ? {} : { target: request.target }),
      buildArgNames: Object.keys(request.buildArgs).sort(),
      secretIds: [...request.secrets].sort(),
      ...(request.standard === undefined ? {} : { standard: request.standard }),
      ...(request.rebuildOf === undefined ? {} : { rebuildOf: request.rebuildOf }),
    },
  };
  const dependencies: ResourceDescriptor[] = [
    { name: 'context', uri: request.context.url ?? `context:${request.context.digest}`, digest: digestSet(request.context.digest) },
    ...f.bases.map((b) => ({ name: b.name, uri: `oci://${b.name}`, digest: digestSet(b.digest), annotations: { role: 'base-image' } })),
  ];
  const scan = f.verdict.gates.find((g) => g.gate === 'vulnerabilities');
  return {
    _type: IN_TOTO_STATEMENT_V1,
    subject: [{ name: repository, digest: digestSet(f.digest) }],
    predicateType: SLSA_PROVENANCE_V1,
    predicate: {
      buildDefinition: {
        buildType: FLEET_BUILD_TYPE,
        externalParameters: external,
        internalParameters: { pool: request.pool, workerId: f.workerId, attempt: f.attempt },
        resolvedDependencies: dependencies,
      },
      runDetails: {
        builder: {
          id: `https://fleetbuild.dev/provenance/builder/v1?pool=${encodeURIComponent(request.pool)}`,
          version: { builder: f.builder.kind, [f.builder.kind]: f.builder.version, pool: request.pool, workerId: f.workerId },
        },
        metadata: {
          invocationId: `${f.record.id}/attempt-${f.attempt}`,
          ...(f.startedOn === undefined ? {} : { startedOn: f.startedOn }),
          finishedOn: f.finishedOn,
        },
        byproducts: [
          ...(f.sbom === undefined ? [] : [f.sbom]),
          {
            name: 'gate-verdict',
            mediaType: 'application/json',
            annotations: {
              promoted: f.verdict.promoted,
              gates: f.verdict.gates.map((g) => ({ gate: g.gate, outcome: g.outcome, code: g.code })),
              ...(scan?.scan === undefined
                ? {}
                : {
                    scan: {
                      scanner: scan.scan.scanner,
                      total: scan.scan.total,
                      blocking: scan.scan.blocking.length,
                      allowlisted: scan.scan.allowlisted.map((a) => ({ cve: a.cve, package: a.package, expired: a.expired })),
                    },
                  }),
            },
          },
        ],
      },
    },
  };
}
