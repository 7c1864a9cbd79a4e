import { GateCode, type BuildKind, type GateId, type GateResult, type Verdict } from '../../protocol/index.ts';
import type { RegistryClient } from '../../adapters/registry-client.ts';
import { verifyImageSignature } from '../../signing/sigstore.ts';
import { abortable, mapLimit, sharedGateCache, type GateCache, type LayerScan } from './cache.ts';
import { readImage, scanLayer, type Descriptor } from './image-reader.ts';
import { checkNonRoot } from './non-root.ts';
import { secretInLayer, secretsInConfig } from './no-secrets.ts';
import { checkOfficialBase, type OfficialImage } from './official-base.ts';
import { failureOutcome, type GatePolicy } from './policy.ts';
import { isCandidateFile, secretInFile } from './secret-patterns.ts';

export { loadGatePolicy, GatePolicy, DEFAULT_POLICY_PATH } from './policy.ts';
export { GateCache, sharedGateCache } from './cache.ts';

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
  /** what earlier runs learned; the process-wide one when omitted */
  cache?: GateCache;
}

/** An official image as resolved for one run, with the layers its /etc/passwd is read from. */
export interface ResolvedOfficial extends OfficialImage {
  layers: Descriptor[];
}

/** Layers streamed at once: one large layer dominates, the small ones come along beside it. */
const LAYER_CONCURRENCY = 4;

/**
 * The official images named by the policy, as the registry has them now. Tags are resolved on
 * every run (the platform team may move them); configs are read once per digest.
 */
export async function resolveOfficials(registry: RegistryClient, policy: GatePolicy, signal?: AbortSignal, cache: GateCache = sharedGateCache): Promise<ResolvedOfficial[]> {
  return Promise.all(
    policy.officialBases.map(async (name) => {
      const [repository, tag] = name.split(':') as [string, string];
      const image = await readImage(registry, repository, tag, signal, cache.configs);
      return { name, repository, digest: image.digest, diffIds: image.config.rootfs.diff_ids, layers: image.layers };
    }),
  );
}

/**
 * Runs every gate on the quarantined image, read from the registry by digest, and decides
 * promotion: promoted only when no gate blocks. Gate failures are results, not exceptions;
 * what throws is an unreadable registry (the caller retries).
 *
 * Reads only what the verdict needs, and each thing once: the layers past the official base
 * (the official ones are the platform's own, signed and scanned when published), each blob once
 * per digest, and an official base's /etc/passwd once per base digest, only when the app's
 * layers leave a user name to resolve. The layers, the signature check and the config checks
 * run concurrently; the results are assembled in the same order whatever finishes first.
 */
export async function runGates(input: GateInput): Promise<Verdict> {
  const { registry, policy, kind, signal } = input;
  const cache = input.cache ?? sharedGateCache;
  const [image, officials] = await Promise.all([
    readImage(registry, input.quarantineRepository, input.digest, signal),
    resolveOfficials(registry, policy, signal, cache),
  ]);
  const official = checkOfficialBase(image, officials);
  const base = official.ok ? (officials.find((o) => o.digest === official.base.digest) ?? null) : null;

  const signature = official.ok ? verifyImageSignature(registry, official.base.repository, official.base.digest, input.signingPublicKey) : null;
  // Layers past the official base are the app's: scanned for secret files and /etc/passwd.
  const appFrom = official.ok ? official.base.diffIds.length : 0;
  const appLayers = image.layers.slice(appFrom);
  const [scans, sig] = await Promise.all([
    mapLimit(appLayers, LAYER_CONCURRENCY, (layer) => abortable(scanAppLayer(registry, image.repository, layer, cache), signal)),
    signature,
  ]);

  // the last /etc/passwd wins: a later layer's version replaces an earlier one
  let passwd: string | null = null;
  for (const scan of scans) if (scan.passwd !== null) passwd = scan.passwd;
  const user = image.config.config.User ?? '';
  if (passwd === null && base !== null && /^[^0-9:]/.test(user)) {
    passwd = await abortable(basePasswd(registry, base, cache), signal);
  }

  const results: GateResult[] = [];
  const record = (gate: GateId, ok: boolean, code: GateCode, reason: string): void => {
    if (ok) {
      results.push({ gate, outcome: 'pass', code, reason });
      return;
    }
    const { outcome, note } = failureOutcome(policy, gate, kind, input.repository);
    results.push({ gate, outcome, code, reason: note === undefined ? reason : `${reason} (${note})` });
  };

  record('official-base', official.ok, official.code, official.reason);

  const nonRoot = checkNonRoot(image, passwd);
  record('non-root', nonRoot.ok, nonRoot.code, nonRoot.reason);

  const fileFindings = scans.flatMap((scan, i) => scan.secrets.map((s) => secretInLayer(s.why, appFrom + i)));
  const secrets = [...secretsInConfig(image), ...fileFindings];
  if (secrets.length === 0) record('no-secrets', true, GateCode.NO_SECRETS_OK, 'no secret found in ENV, labels, history or files');
  for (const s of secrets) record('no-secrets', false, s.code, s.reason);

  if (official.ok && sig !== null) {
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

/**
 * What one app layer holds for the gates: its last /etc/passwd and its secret files. Once per
 * blob digest (scanLayer proves the bytes are that digest); shared by concurrent runs.
 */
function scanAppLayer(registry: RegistryClient, repository: string, layer: Descriptor, cache: GateCache): Promise<LayerScan> {
  return cache.layers.get(layer.digest, async () => {
    const scan: LayerScan = { passwd: null, secrets: [] };
    await scanLayer(
      registry,
      repository,
      layer,
      (p, size) => p === '/etc/passwd' || isCandidateFile(p, size),
      (file) => {
        if (file.path === '/etc/passwd') scan.passwd = file.bytes.toString('utf8');
        const why = secretInFile(file.path, file.bytes);
        if (why !== null) scan.secrets.push({ path: file.path, why });
      },
    );
    return scan;
  });
}

/** The last /etc/passwd in an official image's layers (null: none), read once per base digest. */
function basePasswd(registry: RegistryClient, base: ResolvedOfficial, cache: GateCache): Promise<string | null> {
  return cache.basePasswd.get(base.digest, async () => {
    const perLayer = await mapLimit(base.layers, LAYER_CONCURRENCY, async (layer) => {
      const found = { text: null as string | null };
      await scanLayer(registry, base.repository, layer, (p) => p === '/etc/passwd', (file) => (found.text = file.bytes.toString('utf8')));
      return found.text;
    });
    // the last /etc/passwd wins, as in the app's layers
    return perLayer.reduce<string | null>((last, text) => text ?? last, null);
  });
}
