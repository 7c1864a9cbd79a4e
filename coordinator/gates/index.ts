import { GateCode, type BuildKind, type GateId, type GateResult, type Verdict } from '../../protocol/index.ts';
import type { RegistryClient } from '../../adapters/registry-client.ts';
import { verifyImageSignature } from '../../signing/sigstore.ts';
import { readImage, scanLayers } from './image-reader.ts';
import { checkNonRoot } from './non-root.ts';
import { secretInLayerFile, secretsInConfig, type SecretFinding } from './no-secrets.ts';
import { checkOfficialBase, type OfficialImage } from './official-base.ts';
import { failureOutcome, type GatePolicy } from './policy.ts';
import { isCandidateFile } from './secret-patterns.ts';

export { loadGatePolicy, GatePolicy, DEFAULT_POLICY_PATH } from './policy.ts';

export interface GateInput {
  registry: RegistryClient;
  policy: GatePolicy;
  /** PEM public key official images are signed with */
  signingPublicKey: string;
  kind: BuildKind;
  /** where the image sits in quarantine */
  quarantineRepository: string;
  digest: string;
  /** the repository it would be promoted to (exceptions are per repository) */
  repository: string;
  signal?: AbortSignal;
}

/** The official images named by the policy, as the registry has them now. */
export async function resolveOfficials(registry: RegistryClient, policy: GatePolicy, signal?: AbortSignal): Promise<OfficialImage[]> {
  return Promise.all(
    policy.officialBases.map(async (name) => {
      const [repository, tag] = name.split(':') as [string, string];
      const image = await readImage(registry, repository, tag, signal);
      return { name, repository, digest: image.digest, diffIds: image.config.rootfs.diff_ids };
    }),
  );
}

/**
 * Runs every gate on the quarantined image, read from the registry by digest, and decides
 * promotion: promoted only when no gate blocks. Gate failures are results, not exceptions;
 * what throws is an unreadable registry (the caller retries).
 */
export async function runGates(input: GateInput): Promise<Verdict> {
  const { registry, policy, kind, signal } = input;
  const image = await readImage(registry, input.quarantineRepository, input.digest, signal);
  const officials = await resolveOfficials(registry, policy, signal);
  const results: GateResult[] = [];
  const record = (gate: GateId, ok: boolean, code: GateCode, reason: string): void => {
    if (ok) {
      results.push({ gate, outcome: 'pass', code, reason });
      return;
    }
    const { outcome, note } = failureOutcome(policy, gate, kind, input.repository);
    results.push({ gate, outcome, code, reason: note === undefined ? reason : `${reason} (${note})` });
  };

  const official = checkOfficialBase(image, officials);
  record('official-base', official.ok, official.code, official.reason);

  // Layers past the official base are the app's: scanned for secret files (official layers are
  // the platform's own, signed and scanned when published). /etc/passwd is wanted from any layer.
  const appFrom = official.ok ? official.base.diffIds.length : 0;
  const fileFindings: SecretFinding[] = [];
  // the last /etc/passwd wins: a later layer's version replaces an earlier one
  const passwd = { layer: -1, text: null as string | null };
  const keepPasswd = (layer: number, bytes: Buffer): void => {
    if (layer >= passwd.layer) Object.assign(passwd, { layer, text: bytes.toString('utf8') });
  };
  await scanLayers(registry, image, appFrom, (p, size) => p === '/etc/passwd' || isCandidateFile(p, size), (file) => {
    if (file.path === '/etc/passwd') keepPasswd(file.layer, file.bytes);
    const finding = secretInLayerFile(file);
    if (finding !== null) fileFindings.push(finding);
  }, signal);
  const user = image.config.config.User ?? '';
  if (passwd.text === null && appFrom > 0 && /^[^0-9:]/.test(user)) {
    const base = { ...image, layers: image.layers.slice(0, appFrom) };
    await scanLayers(registry, base, 0, (p) => p === '/etc/passwd', (file) => keepPasswd(file.layer, file.bytes), signal);
  }
  const nonRoot = checkNonRoot(image, passwd.text);
  record('non-root', nonRoot.ok, nonRoot.code, nonRoot.reason);

  const secrets = [...secretsInConfig(image), ...fileFindings];
  if (secrets.length === 0) record('no-secrets', true, GateCode.NO_SECRETS_OK, 'no secret found in ENV, labels, history or files');
  for (const s of secrets) record('no-secrets', false, s.code, s.reason);

  if (official.ok) {
    const sig = await verifyImageSignature(registry, official.base.repository, official.base.digest, input.signingPublicKey);
    record(
      'base-signature',
      sig.ok,
      sig.ok ? GateCode.BASE_SIGNATURE_OK : GateCode.BASE_UNSIGNED,
      sig.ok ? `${official.base.name} (${official.base.digest.slice(0, 19)}…) carries a valid platform signature` : sig.reason,
    );
  } else {
    record('base-signature', false, GateCode.BASE_SIGNATURE_NOT_APPLICABLE, 'no official base to verify: the image does not derive from one');
  }

  return {
    digest: input.digest,
    promoted: !results.some((r) => r.outcome === 'block'),
    gates: results,
    ...(official.ok ? { officialBase: `${official.base.name}@${official.base.digest}` } : {}),
  };
}
