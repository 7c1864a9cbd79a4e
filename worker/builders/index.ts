import { BuildahBuilder } from './buildah.ts';
import type { Builder } from './types.ts';

export type { BuildPlan, BuildResult, Builder, BuildOutput } from './types.ts';

export interface BuilderSettings {
  kind: 'buildah';
  env: Record<string, string>;
  runNetwork: 'private' | 'none';
}

export function createBuilder(settings: BuilderSettings): Builder {
  switch (settings.kind) {
    case 'buildah':
      return new BuildahBuilder(settings.env, settings.runNetwork);
  }
}
