import type { Logger } from '../../adapters/logger.ts';
import type { RegistryClient } from '../../adapters/registry-client.ts';
import { join } from 'node:path';
import { execa } from 'execa';
import type { BuilderKind } from '../../protocol/index.ts';
import { BaseStore } from './base-import.ts';
import { BUILDAH, BuildahBuilder } from './buildah.ts';
import { BuildkitBuilder } from './buildkit.ts';
import { contentStoreOf } from './buildkit-seed-clone.ts';
import { BuildkitDaemon, type BuildkitNetwork } from './buildkitd.ts';
import { KanikoBuilder, type KanikoCredentials } from './kaniko.ts';
import { SandboxedBuilder, type BuildLimits } from './sandbox.ts';
import { TenantState } from './tenant-state.ts';
import type { Builder } from './types.ts';

export type { BuildPlan, BuildResult, Builder, BuildOutput } from './types.ts';


export interface BuilderSettings {
  kind: BuilderKind;
  env: Record<string, string>;
  runNetwork: 'private' | 'none';
  /** BuildKit's sandbox network (buildkitd.ts); absent: slirp4netns */
  buildkitNetwork?: BuildkitNetwork;
  /** the node's BuildKit root with the platform's images unpacked (buildkit-seed.ts); absent or missing: none */
  buildkitSeed?: string;
  /** kaniko's sandbox network when runNetwork is private (kaniko.ts KanikoNetwork); absent: slirp4netns */
  kanikoNetwork?: 'slirp4netns' | 'pod';
  stateDir: string;
  insecureRegistries: readonly string[];
  /** the builder's own image (kaniko's) in that registry, as `host/repo@digest` once its platform signature checks out */
  resolveBuilderImage: (registryHost: string, signal: AbortSignal) => Promise<string>;
  /** a pull-only docker config the worker pulls kaniko's bases with (kaniko itself gets no credentials) */
  pullAuthFile?: string;
  /** the pool's caps on one build */
  limits?: BuildLimits;
  /** the platform's public key: buildah also checks official bases against it through a containers policy.json */
  signingPublicKeyPath?: string;
  /** the worker's registry access (its credentials): BuildKit asks it whether its local layer cache is the registry's */
  registry?: (host: string) => RegistryClient;
  log: Logger;
}

export function createBuilder(settings: BuilderSettings): Builder {
  const limits = settings.limits ?? {};
  // Everything a build writes lands under the worker's state dir: its scratch, the containers
  // storage of buildah and podman (kaniko), buildkitd's root.
  return new SandboxedBuilder(builderOf(settings, limits), limits, [settings.stateDir]);
}

function builderOf(settings: BuilderSettings, limits: BuildLimits): Builder {
  switch (settings.kind) {
    case 'buildah':
      // The stores hold the build user's subordinate ids: removed from inside its user namespace.
      return new BuildahBuilder(settings.env, settings.runNetwork, limits, settings.signingPublicKeyPath, new TenantState(join(settings.stateDir, 'tenants'), async (dir) => {
        await execa(BUILDAH, ['unshare', 'rm', '-rf', dir], { env: settings.env, extendEnv: false, stdin: 'ignore', reject: false });
      }));
    case 'buildkit': {
      const daemon = new BuildkitDaemon(settings.stateDir, settings.env, settings.insecureRegistries, settings.log, limits, settings.buildkitNetwork, settings.buildkitSeed);
      const bases = new BaseStore(join(settings.stateDir, 'bases'), settings.env, settings.insecureRegistries, undefined, seedBlobs(settings));
      const builder = new BuildkitBuilder(daemon, settings.env, settings.insecureRegistries, bases, join(settings.stateDir, 'buildkit-cache'), settings.runNetwork, join(settings.stateDir, 'buildkit-out'), settings.log, settings.registry);
      // A stopping worker pushes the layer caches it still owes the registry, then stops the daemon.
      return Object.assign(builder, { stop: async () => {
        await builder.drain();
        await daemon.stop();
      } });
    }
    case 'kaniko': {
      const bases = new BaseStore(join(settings.stateDir, 'bases'), settings.env, settings.insecureRegistries, settings.pullAuthFile, seedBlobs(settings));
      const builder = new KanikoBuilder(settings.env, settings.insecureRegistries, settings.resolveBuilderImage, kanikoCredentials(settings), bases, join(settings.stateDir, 'kaniko'), settings.runNetwork === 'private' && settings.kanikoNetwork === 'pod' ? 'pod' : settings.runNetwork, limits, settings.log);
      return Object.assign(builder, { stop: () => builder.drain() });
    }
  }
}

/** The official bases' blobs the node's BuildKit seed holds, for a worker's base store to link in. */
function seedBlobs(settings: BuilderSettings): string | undefined {
  return settings.buildkitSeed === undefined ? undefined : contentStoreOf(settings.buildkitSeed);
}

/** The push credentials are the private copy the worker hands every builder (REGISTRY_AUTH_FILE). */
function kanikoCredentials(settings: BuilderSettings): KanikoCredentials {
  const push = settings.env.REGISTRY_AUTH_FILE;
  return { ...(push === undefined ? {} : { pushAuthFile: push }), ...(settings.pullAuthFile === undefined ? {} : { pullAuthFile: settings.pullAuthFile }) };
}
