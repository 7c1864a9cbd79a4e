import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import type { Logger } from '../../adapters/logger.ts';
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
 * Opens the platform's signing key for provenance, or null (logged) when this coordinator has
 * none: then images are promoted without an attestation rather than not at all, and the build
 * record says so by having no `provenance`. Workers never get this key; only the coordinator.
 */
export async function loadPlatformSigningKey(
  paths: { keyPath: string; passphrasePath: string; publicKeyPath: string },
  log: Logger,
): Promise<PlatformSigningKey | null> {
  const [pem, passphrase, publicKeyPem] = await Promise.all([
    readFile(paths.keyPath, 'utf8').catch(() => null),
    readFile(paths.passphrasePath, 'utf8').catch(() => null),
    readFile(paths.publicKeyPath, 'utf8').catch(() => null),
  ]);
  if (pem === null || passphrase === null || publicKeyPem === null) {
    log.warn({ keyPath: paths.keyPath }, 'no readable platform signing key: promoted images get no provenance attestation');
    return null;
  }
  return { key: openSigstorePrivateKey(pem, passphrase.trim()), publicKeyPem };
}
