import { z } from 'zod';
import { Digest } from './fields.ts';

/**
 * One image a build's FROM lines pulled, as the worker resolved it: `name` is the FROM reference
 * after build-arg expansion (the tag form a rebuild watches, e.g. `127.0.0.1:5000/official/base:1`),
 * `digest` the sha256 of the manifest the build used. Stage names and `scratch` are not bases.
 */
export const BaseImage = z.strictObject({
  name: z.string().min(1).max(512),
  digest: Digest,
});
export type BaseImage = z.infer<typeof BaseImage>;
