import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { registryCredentials } from '../runtime/docker-config.ts';
import { RegistryClient } from '../runtime/registry-client.ts';
import type { WorkerConfig } from './config.ts';

/** The worker's own client for a registry (signature checks), with the pool's credentials for it. */
export async function registryClientFor(config: WorkerConfig, host: string): Promise<RegistryClient> {
  const credentials = config.registryAuthFile === undefined ? undefined : ((await registryCredentials(config.registryAuthFile, host)) ?? undefined);
  return new RegistryClient({ host, insecure: config.insecureRegistries.includes(host), credentials });
}

/**
 * Gives every builder the pool's registry credentials: a private copy of the docker config in the
 * worker's state dir (0600), named by DOCKER_CONFIG (BuildKit's buildctl, kaniko's mount) and
 * REGISTRY_AUTH_FILE (buildah, podman). Returns the environment to add; nothing without a file.
 */
export async function registryAuthEnv(config: WorkerConfig): Promise<Record<string, string>> {
  if (config.registryAuthFile === undefined) return {};
  const dir = join(config.stateDir, 'docker');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await copyFile(config.registryAuthFile, join(dir, 'config.json'));
  return { DOCKER_CONFIG: dir, REGISTRY_AUTH_FILE: join(dir, 'config.json') };
}
