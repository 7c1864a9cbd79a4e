import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * A containers `policy.json` (containers-policy.json(5)) that requires the platform's sigstore
 * signature on every image pulled from the signed namespaces of one registry, and accepts
 * anything else (other bases are the allowed-registries check's business, not the signature's).
 *
 * `matchRepository`: a signature names `host/official/base:1`, and the same image is pulled by
 * digest once the worker pinned it, or by another tag; the project's own verifier
 * (signing/sigstore.ts) accepts any identity in the image's repository, and so does this.
 */
export function signaturePolicy(registryHost: string, namespaces: readonly string[], publicKeyPath: string): object {
  const requirement = [{ type: 'sigstoreSigned', keyPath: publicKeyPath, signedIdentity: { type: 'matchRepository' } }];
  const scopes = Object.fromEntries(namespaces.map((ns) => [`${registryHost}/${ns.replace(/\/+$/, '')}`, requirement]));
  return { default: [{ type: 'insecureAcceptAnything' }], transports: { docker: scopes } };
}

/**
 * The registries.d file (containers-registries.d(5)) that makes containers/image look for
 * sigstore signatures where signing/sigstore.ts puts them: `sha256-<hex>.sig` attachments in
 * the image's repository.
 */
export function sigstoreAttachments(registryHost: string): string {
  return `docker:\n  ${JSON.stringify(registryHost)}:\n    use-sigstore-attachments: true\n`;
}

export interface SignaturePolicyFiles {
  /** for `--signature-policy` */
  policyPath: string;
  /** for buildah's global `--registries-conf-dir` (it sets the registries.d directory) */
  registriesDir: string;
}

/**
 * Writes both files under DIR. They are handed to the tool explicitly (buildah's flags), not
 * put where every containers tool of the worker would find them: Debian's podman 4.3 and skopeo
 * 1.9 (the kaniko pools) have sigstore patched out and keep the project's verifier alone.
 */
export async function writeSignaturePolicy(dir: string, registryHost: string, namespaces: readonly string[], publicKeyPath: string): Promise<SignaturePolicyFiles> {
  const registriesDir = join(dir, 'registries.d');
  // Nothing secret in either file (a path and a public key's location): readable as written.
  await mkdir(registriesDir, { recursive: true, mode: 0o755 });
  const policyPath = join(dir, 'policy.json');
  await writeFile(policyPath, `${JSON.stringify(signaturePolicy(registryHost, namespaces, publicKeyPath), null, 2)}\n`);
  await writeFile(join(registriesDir, 'fleet-sigstore.yaml'), sigstoreAttachments(registryHost));
  return { policyPath, registriesDir };
}
