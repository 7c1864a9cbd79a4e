import { readFile } from 'node:fs/promises';
import type { Logger } from '../../adapters/logger.ts';
import type { RegistryClient } from '../../adapters/registry-client.ts';
import type { CoordinatorConfig } from '../config.ts';
import { UNKNOWN_BUILDER, type RegisteredWorkers } from '../registered-workers.ts';
import type { ProvenanceSettings } from '../reports.ts';
import { loadPlatformSigningKey } from './signing-key.ts';
import { ProvenanceWriter } from './writer.ts';

export { ProvenanceWriter } from './writer.ts';
export { provenanceStatement, type ProvenanceFacts } from './statement.ts';

/**
 * Provenance for the report processor: the platform key opened once, and the builder a worker
 * announced (the workers bucket; a worker gone since its report reads as unknown).
 */
export async function provenanceSettings(
  config: CoordinatorConfig,
  registry: RegistryClient,
  workers: RegisteredWorkers,
  log: Logger,
  onLayerRead?: (when: 'ahead' | 'sbom') => void,
): Promise<ProvenanceSettings | undefined> {
  if (config.platform.provenance === 'off') {
    log.warn('platform.provenance is off: promoted images get no provenance attestation');
    return undefined;
  }
  const signing = await loadPlatformSigningKey({ keyPath: config.platform.signingKeyPath, passphrasePath: config.platform.signingPassphrasePath, publicKeyPath: config.platform.signingPublicKeyPath });
  return {
    writer: new ProvenanceWriter(registry, signing, { name: 'fleetbuild-coordinator', version: await packageVersion() }, onLayerRead),
    // the claim's check read the entry moments ago: usually answered from memory
    builderOf: async (pool, workerId) => (await workers.builderOf(pool, workerId)) ?? UNKNOWN_BUILDER,
  };
}

async function packageVersion(): Promise<string> {
  const text = await readFile(new URL('../../package.json', import.meta.url), 'utf8').catch(() => '{}');
  const version: unknown = (JSON.parse(text) as { version?: unknown }).version;
  return typeof version === 'string' ? version : 'unknown';
}
