import type { Logger } from '../../runtime/logger.ts';
import { BuildahBuilder } from './buildah.ts';
import { BuildkitBuilder } from './buildkit.ts';
import { BuildkitDaemon } from './buildkitd.ts';
import type { Builder } from './types.ts';

export type { BuildPlan, BuildResult, Builder, BuildOutput } from './types.ts';

export interface BuilderSettings {
  kind: 'buildah' | 'buildkit';
  env: Record<string, string>;
  runNetwork: 'private' | 'none';
  stateDir: string;
  insecureRegistries: readonly string[];
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
  }
}
