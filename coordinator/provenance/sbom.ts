import { randomUUID } from 'node:crypto';
import type { RegistryClient } from '../../adapters/registry-client.ts';
import { readImage, scanLayer } from '../gates/image-reader.ts';
import { SharedAnswers } from '../../adapters/bounded-cache.ts';

export const CYCLONEDX_JSON = 'application/vnd.cyclonedx+json';

/** One Debian package as the image's dpkg database lists it. */
export interface DebPackage {
  name: string;
  version: string;
  architecture: string;
  source?: string;
}

const DPKG_STATUS = '/var/lib/dpkg/status';
/** distroless-style images keep one status file per package here instead */
const DPKG_STATUS_D = '/var/lib/dpkg/status.d/';

/**
 * The installed packages of a dpkg status file: paragraphs separated by blank lines, only those
 * whose Status says `installed` (a removed package keeps a paragraph with `config-files`).
 */
export function parseDpkgStatus(text: string): DebPackage[] {
  const packages: DebPackage[] = [];
  for (const paragraph of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    for (const m of paragraph.matchAll(/^([A-Za-z-]+):[ \t]*(.*)$/gm)) fields.set((m[1] ?? '').toLowerCase(), (m[2] ?? '').trim());
    const name = fields.get('package');
    const version = fields.get('version');
    const status = fields.get('status');
    if (name === undefined || version === undefined || (status !== undefined && !/ installed$/.test(status))) continue;
    const source = fields.get('source')?.split(' ')[0];
    packages.push({ name, version, architecture: fields.get('architecture') ?? 'all', ...(source === undefined ? {} : { source }) });
  }
  return packages;
}

/** What one layer holds of the dpkg database (remembered by layer digest: base layers are read once). */
interface LayerDpkg {
  status: string | null;
  perPackage: Map<string, string>;
}

/** Layers already read, by digest; bounded so a long-lived coordinator does not grow without end. */
export class LayerDpkgCache {
  // single flight: builds whose SBOMs need one layer at the same time read it once
  private readonly answers: SharedAnswers<string, LayerDpkg>;
  constructor(max = 512) {
    this.answers = new SharedAnswers({ maxEntries: max });
  }
  layer(digest: string, read: () => Promise<LayerDpkg>): Promise<LayerDpkg> {
    return this.answers.get(digest, read);
  }
}

/**
 * What each of the image's layers holds of the dpkg database, in layer order, straight from the
 * registry by digest. A layer's bytes are checked against its digest while streaming, so what it
 * held is remembered by that digest: reading a base ahead of a build fills the cache with this.
 */
export async function imageDpkgLayers(
  registry: RegistryClient,
  repository: string,
  digest: string,
  cache: LayerDpkgCache,
  signal?: AbortSignal,
  /** called for each layer read from the registry (not for one the cache answers) */
  onLayerRead?: () => void,
): Promise<LayerDpkg[]> {
  const image = await readImage(registry, repository, digest, signal);
  // every layer at once (each is gunzipped off the main thread)
  return Promise.all(
    image.layers.map((layer) =>
      cache.layer(layer.digest, async () => {
        onLayerRead?.();
        const read: LayerDpkg = { status: null, perPackage: new Map() };
        await scanLayer(
          registry,
          repository,
          layer,
          (path, size) => size < 64 * 1024 * 1024 && (path === DPKG_STATUS || path.startsWith(DPKG_STATUS_D)),
          (file) => {
            if (file.path === DPKG_STATUS) read.status = file.bytes.toString('utf8');
            else read.perPackage.set(file.path, file.bytes.toString('utf8'));
          },
          signal,
        );
        return read;
      }),
    ),
  );
}

/**
 * The image's installed Debian packages, from its layers' dpkg files applied in order (a later
 * layer's file replaces an earlier one's): read from the registry by digest, so what was gated is
 * what is described.
 */
export async function imagePackages(...args: Parameters<typeof imageDpkgLayers>): Promise<DebPackage[]> {
  let status: string | null = null;
  const perPackage = new Map<string, string>();
  for (const found of await imageDpkgLayers(...args)) {
    if (found.status !== null) status = found.status;
    for (const [path, text] of found.perPackage) perPackage.set(path, text);
  }
  const all = [...parseDpkgStatus(status ?? ''), ...[...perPackage.values()].flatMap(parseDpkgStatus)];
  const seen = new Set<string>();
  return all.filter((p) => !seen.has(`${p.name}:${p.architecture}`) && seen.add(`${p.name}:${p.architecture}`)).sort((a, b) => a.name.localeCompare(b.name));
}

/** A CycloneDX 1.5 JSON SBOM of a container image's Debian packages (package URLs `pkg:deb/debian/…`). */
export function cycloneDx(image: { name: string; digest: string }, packages: readonly DebPackage[], tool: { name: string; version: string }, at: string): Record<string, unknown> {
  const purl = (p: DebPackage): string =>
    `pkg:deb/debian/${encodeURIComponent(p.name)}@${encodeURIComponent(p.version)}?arch=${encodeURIComponent(p.architecture)}${p.source === undefined ? '' : `&upstream=${encodeURIComponent(p.source)}`}`;
  return {
    bomFormat: 'CycloneDX',
    specVersion: '1.5',
    serialNumber: `urn:uuid:${randomUUID()}`,
    version: 1,
    metadata: {
      timestamp: at,
      tools: { components: [{ type: 'application', name: tool.name, version: tool.version }] },
      component: { type: 'container', 'bom-ref': `${image.name}@${image.digest}`, name: image.name, version: image.digest },
    },
    components: packages.map((p) => ({ type: 'library', 'bom-ref': purl(p), name: p.name, version: p.version, purl: purl(p) })),
  };
}
