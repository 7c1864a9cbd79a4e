import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { CatalogId, parseWith } from '../../protocol/index.ts';

/** An image the platform itself publishes, named `repository:tag` inside the fleet's registry. */
const PlatformImage = z.string().regex(/^(official|platform)\/[a-z0-9._\/-]+:[A-Za-z0-9_][A-Za-z0-9_.-]*$/, 'must be official/NAME:TAG or platform/NAME:TAG');
const Fragment = z.array(z.string().min(1).refine((l) => !l.includes('\n'), 'one Dockerfile instruction per line')).min(1);

export const Catalog = z.object({
  runtimes: z.record(CatalogId, z.object({ title: z.string(), template: z.string(), buildBase: PlatformImage, runtimeBase: PlatformImage })),
  options: z.record(CatalogId, z.object({ title: z.string(), fragment: Fragment })),
  services: z.record(
    CatalogId,
    z.object({ title: z.string(), image: PlatformImage, runtimes: z.array(CatalogId).min(1), fragment: Fragment }),
  ),
});
export type Catalog = z.infer<typeof Catalog>;

/** The catalog with each runtime's template text loaded: what the renderer needs, validated once. */
export interface LoadedCatalog {
  catalog: Catalog;
  templates: ReadonlyMap<string, string>;
}

export const DEFAULT_CATALOG_PATH = new URL('../../images/platform/catalog.json', import.meta.url).pathname;

export async function loadCatalog(path: string = DEFAULT_CATALOG_PATH): Promise<LoadedCatalog> {
  const catalog = parseWith(Catalog, JSON.parse(await readFile(path, 'utf8')), `platform catalog ${path}`);
  const templates = new Map<string, string>();
  for (const [id, runtime] of Object.entries(catalog.runtimes)) {
    templates.set(id, await readFile(join(dirname(path), runtime.template), 'utf8'));
  }
  return { catalog, templates };
}
