import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { loadRegistryCredentials, type RegistryCredentials } from '../adapters/docker-config.ts';
import { RegistryClient } from '../adapters/registry-client.ts';
import type { WorkerConfig } from './config.ts';

/**
 * The pool's registry credentials, taken once when the worker starts: the worker's own clients
 * (signature checks; one per registry, so a Bearer token is reused across builds) and the
 * environment that hands the same credentials to every builder.
 */
export class RegistryAccess {
  private readonly clients = new Map<string, RegistryClient>();

  private constructor(
    private readonly insecureRegistries: readonly string[],
    private readonly credentials: ReadonlyMap<string, RegistryCredentials>,
    /** for the builders: DOCKER_CONFIG (buildctl, kaniko's mount) and REGISTRY_AUTH_FILE (buildah, podman) */
    readonly builderEnv: Readonly<Record<string, string>>,
  ) {}

  /** Without a file: anonymous access. With one: a private copy (0600) in the state dir for the builders. */
  static async open(config: WorkerConfig): Promise<RegistryAccess> {
    if (config.registryAuthFile === undefined) return new RegistryAccess(config.insecureRegistries, new Map(), {});
    const dir = join(config.stateDir, 'docker');
    const file = join(dir, 'config.json');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await copyFile(config.registryAuthFile, file);
    return new RegistryAccess(config.insecureRegistries, await loadRegistryCredentials(file), { DOCKER_CONFIG: dir, REGISTRY_AUTH_FILE: file });
  }

  client(host: string): RegistryClient {
    let client = this.clients.get(host);
    if (client === undefined) {
      client = new RegistryClient({ host, insecure: this.insecureRegistries.includes(host), credentials: this.credentials.get(host) });
      this.clients.set(host, client);
    }
    return client;
  }
}
