import { z } from 'zod';

/** The rootless builders a worker pool can run. Never a Docker daemon. */
export const BUILDER_KINDS = ['buildah', 'buildkit', 'kaniko'] as const;
export const BuilderKind = z.enum(BUILDER_KINDS);
export type BuilderKind = z.infer<typeof BuilderKind>;
