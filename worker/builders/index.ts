import type { Logger } from '../../adapters/logger.ts';
import type { BuilderKind } from '../../protocol/index.ts';
import { BuildahBuilder } from './buildah.ts';
import { BuildkitBuilder } from './buildkit.ts';
import { BuildkitDaemon } from './buildkitd.ts';
import { KanikoBuilder, type KanikoCredentials } from './kaniko.ts';
import type { Builder } from './types.ts';

export type { BuildPlan, BuildResult, Builder, BuildOutput } from './types.ts';


export interface BuilderSettings {
  kind: BuilderKind;
  env: Record<string, string>;
  runNetwork: 'private' | 'none';
  stateDir: string;
  insecureRegistries: readonly string[];
  /** the builder's own image (kaniko's) in that registry, as `host/repo@digest` once its platform signature checks out */
  resolveBuilderImage: (registryHost: string, signal: AbortSignal) => Promise<string>;
  /** a pull-only docker config for builders that run RUN steps where they read credentials (kaniko) */
  pullAuthFile?: string;
  log: Logger;
}

export function createBuilder(settings: BuilderSettings): Builder {
  switch (settings.kind) {
    case 'buildah':
      return new BuildahBuilder(settings.env, settings.runNetwork);
    case 'buildkit': {
      const daemon = new BuildkitDaemon(settings.stateDir, settings.env, settings.insecureRegistries, settings.log);
      return Object.assign(new BuildkitBuilder(daemon, settings.env, settings.insecureRegistries), { stop: () => daemon.stop() });
    }
    case 'kaniko':
      return new KanikoBuilder(settings.env, settings.insecureRegistries, settings.resolveBuilderImage, kanikoCredentials(settings));
  }
}

/** The push credentials are the private copy the worker hands every builder (REGISTRY_AUTH_FILE). */
function kanikoCredentials(settings: BuilderSettings): KanikoCredentials {
  const push = settings.env.REGISTRY_AUTH_FILE;
  return { ...(push === undefined ? {} : { pushAuthFile: push }), ...(settings.pullAuthFile === undefined ? {} : { pullAuthFile: settings.pullAuthFile }) };
}
