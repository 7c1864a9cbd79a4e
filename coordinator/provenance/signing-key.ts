import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { ErrorCode, FleetError } from '../../protocol/index.ts';
import { cacheDir } from '../../adapters/environment.ts';
import { openSigstorePrivateKey } from '../../signing/sigstore-key.ts';

/** The key the official images are signed with, made by scripts/bootstrap (root-only files). */
export const platformSigningKeyPath = (): string => join(cacheDir(), 'keys', 'official.key');
export const platformSigningPassphrasePath = (): string => join(cacheDir(), 'keys', 'official.pass');

export interface PlatformSigningKey {
  key: KeyObject;
  publicKeyPem: string;
}

/**
 * Opens the platform's signing key for provenance. Fails closed: a coordinator that cannot open
 * it refuses to start (E_UNAVAILABLE naming the file), since it would promote images without
 * their attestation; `platform.provenance: off` is the explicit way to run without one. Workers
 * never get this key; only the coordinator.
 */
export async function loadPlatformSigningKey(paths: { keyPath: string; passphrasePath: string; publicKeyPath: string }): Promise<PlatformSigningKey> {
  const read = (what: string, file: string): Promise<string> =>
    readFile(file, 'utf8').catch((e: unknown) => {
      throw new FleetError(
        ErrorCode.E_UNAVAILABLE,
        `cannot read the platform signing ${what} ${file} (${e instanceof Error ? e.message : String(e)}): every promoted image must carry signed provenance; give the coordinator the key or set platform.provenance to "off"`,
      );
    });
  const [pem, passphrase, publicKeyPem] = await Promise.all([read('key', paths.keyPath), read('key passphrase', paths.passphrasePath), read('public key', paths.publicKeyPath)]);
  return { key: openSigstorePrivateKey(pem, passphrase.trim()), publicKeyPem };
}
