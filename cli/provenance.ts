import { readFile } from 'node:fs/promises';
import { ErrorCode, FleetError, type BuildView, type ProvenanceStatement } from '../protocol/index.ts';
import { platformPublicKeyPath } from '../adapters/environment.ts';
import { loadRegistryCredentials } from '../adapters/docker-config.ts';
import { RegistryClient } from '../adapters/registry-client.ts';
import { keyFingerprint } from '../signing/dsse.ts';
import { verifyProvenance } from '../signing/provenance-check.ts';
import { parseImageRef } from '../worker/base-digests.ts';

export interface ProvenanceOptions {
  json: boolean;
  /** PEM public key to verify with; the platform's (made by the bootstrap) by default */
  key?: string | undefined;
  /** for a bare digest: the repository it is in */
  repo?: string | undefined;
  /** the registry of a bare digest; the local fleet's by default */
  registry?: string | undefined;
  /** docker config.json with credentials for the registry */
  registryAuth?: string | undefined;
  insecure: boolean;
}

/** What `fleet provenance` needs from a fleet: only a build id asks one. */
export interface ProvenanceLookups {
  build(id: string): Promise<BuildView>;
  localRegistry(): Promise<string | undefined>;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?$/;

/**
 * `fleet provenance <ref|digest|build id>`: finds the image, reads its attestation from the
 * registry and verifies its signature with the public key before printing anything from it.
 * A tampered attestation, one signed by another key, or one about another image is refused
 * (E_ATTESTATION_INVALID); nothing from it is printed.
 */
export async function provenanceCommand(target: string, opts: ProvenanceOptions, lookups: ProvenanceLookups, out: NodeJS.WritableStream): Promise<number> {
  const image = await locate(target, opts, lookups);
  const credentials = opts.registryAuth === undefined ? undefined : (await loadRegistryCredentials(opts.registryAuth)).get(image.host);
  const registry = new RegistryClient({ host: image.host, insecure: opts.insecure || LOOPBACK.test(image.host), credentials });
  const digest = image.digest ?? (await registry.manifest(image.repository, image.tag))?.digest;
  if (digest === undefined) throw new FleetError(ErrorCode.E_NOT_FOUND, `no image ${image.host}/${image.repository}:${image.tag}`);
  const publicKeyPem = await readFile(opts.key ?? platformPublicKeyPath(), 'utf8');
  const verified = await verifyProvenance(registry, image.repository, digest, publicKeyPem);
  const subject = `${image.host}/${image.repository}@${digest}`;
  const signedBy = keyFingerprint(publicKeyPem);
  if (opts.json) {
    out.write(`${JSON.stringify({ verified: true, image: subject, attestation: `${image.host}/${image.repository}@${verified.attestation}`, signedBy, statement: verified.statement })}\n`);
  } else {
    out.write(render(subject, `${image.host}/${image.repository}@${verified.attestation}`, signedBy, verified.statement));
  }
  return 0;
}

async function locate(target: string, opts: ProvenanceOptions, lookups: ProvenanceLookups): Promise<{ host: string; repository: string; tag: string; digest?: string }> {
  if (target.startsWith('sha256:')) {
    if (!/^sha256:[a-f0-9]{64}$/.test(target)) throw new FleetError(ErrorCode.E_INVALID_REQUEST, `${target} is not a sha256 digest`);
    if (opts.repo === undefined) throw new FleetError(ErrorCode.E_INVALID_REQUEST, 'a bare digest needs --repo REPOSITORY (and --registry HOST outside the local fleet)');
    const host = opts.registry ?? (await lookups.localRegistry());
    if (host === undefined) throw new FleetError(ErrorCode.E_INVALID_REQUEST, 'no local fleet: name the registry with --registry HOST');
    return { host, repository: opts.repo, tag: 'latest', digest: target };
  }
  if (target.includes('/')) {
    const ref = parseImageRef(target);
    return ref;
  }
  const build = await lookups.build(target);
  if (build.state.phase !== 'pushed') throw new FleetError(ErrorCode.E_NOT_FOUND, `build ${target} is ${build.state.phase}: only a promoted image has provenance`);
  const first = build.state.references[0] ?? '';
  return { host: first.slice(0, first.indexOf('/')), repository: build.request.image.repository, tag: build.request.image.tags[0] ?? 'latest', digest: build.state.digest };
}

function render(subject: string, attestation: string, signedBy: string, s: ProvenanceStatement): string {
  const p = s.predicate;
  const request = (p.buildDefinition.externalParameters.request ?? {}) as Record<string, unknown>;
  const internal = p.buildDefinition.internalParameters ?? {};
  const version = p.runDetails.builder.version ?? {};
  const kind = version.builder ?? 'unknown';
  const lines = [
    `${subject}`,
    `  signature    verified (in-toto ${s.predicateType}, key ${signedBy})`,
    `  attestation  ${attestation}`,
    `  build        ${String(request.id)} ${p.runDetails.metadata?.invocationId ?? ''} tenant ${String(request.tenant)} kind ${String(request.kind)}`,
    `  builder      ${kind} ${version[kind] ?? ''} pool ${String(internal.pool)} worker ${String(internal.workerId)}`,
    `  time         ${p.runDetails.metadata?.startedOn ?? '?'} → ${p.runDetails.metadata?.finishedOn ?? '?'}`,
    ...(Array.isArray(request.buildArgNames) && request.buildArgNames.length > 0 ? [`  build args   ${request.buildArgNames.join(', ')} (names only)`] : []),
  ];
  for (const d of p.buildDefinition.resolvedDependencies) {
    const hex = d.digest?.sha256;
    lines.push(`  ${d.name === 'context' ? 'context' : 'base   '}      ${d.name === 'context' ? '' : `${d.name ?? d.uri ?? '?'}@`}sha256:${hex ?? '?'}`);
  }
  const verdict = p.runDetails.byproducts?.find((b) => b.name === 'gate-verdict')?.annotations;
  const gates = Array.isArray(verdict?.gates) ? (verdict.gates as { gate: string; outcome: string; code: string }[]) : [];
  for (const g of gates) lines.push(`  gate         ${g.gate}: ${g.outcome} ${g.code}`);
  const scan = verdict?.scan as { scanner?: { name: string; version: string; dbBuilt: string }; total?: number; blocking?: number } | undefined;
  if (scan?.scanner !== undefined) lines.push(`  scan         ${scan.scanner.name} ${scan.scanner.version} (DB ${scan.scanner.dbBuilt}): ${scan.total ?? 0} findings, ${scan.blocking ?? 0} blocking`);
  return `${lines.join('\n')}\n`;
}
