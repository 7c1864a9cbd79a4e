import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import { z } from 'zod';
import type { RegistryClient } from '../../adapters/registry-client.ts';
import { readImage } from '../../coordinator/gates/image-reader.ts';

/** The image config fields the corpus compares (image-reader's ImageConfig keeps only what the gates read). */
const RunConfig = z.object({
  User: z.string().optional(),
  Env: z.array(z.string()).nullish(),
  WorkingDir: z.string().optional(),
  Entrypoint: z.array(z.string()).nullish(),
  Cmd: z.array(z.string()).nullish(),
  ExposedPorts: z.record(z.string(), z.unknown()).nullish(),
  Volumes: z.record(z.string(), z.unknown()).nullish(),
  Labels: z.record(z.string(), z.string()).nullish(),
  Healthcheck: z
    .object({
      Test: z.array(z.string()).nullish(),
      Interval: z.number().optional(),
      Timeout: z.number().optional(),
      StartPeriod: z.number().optional(),
      StartInterval: z.number().optional(),
      Retries: z.number().optional(),
    })
    .nullish(),
  StopSignal: z.string().optional(),
  Shell: z.array(z.string()).nullish(),
  OnBuild: z.array(z.string()).nullish(),
});
const ConfigBlob = z.object({ config: RunConfig.nullish() });

export const COMPARED_FIELDS = ['User', 'Env', 'WorkingDir', 'Entrypoint', 'Cmd', 'ExposedPorts', 'Volumes', 'Labels', 'Healthcheck', 'StopSignal', 'Shell', 'OnBuild'] as const;
export type ComparedField = (typeof COMPARED_FIELDS)[number];
/** Each compared field, normalised: absent, null, "", [] and {} are one "not set" (undefined). */
export type ConfigFacts = Partial<Record<ComparedField, unknown>>;

/** Labels a builder or the platform writes on its own; not the Dockerfile's, so not compared. */
const OWN_LABEL = /^(io\.buildah\.|io\.fleet\.|com\.docker\.|moby\.buildkit\.)/;

export interface TreeEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'hardlink' | 'other';
  mode: string;
  owner: string;
  /** symlink or hard-link target */
  link?: string;
  /** sha256 of a regular file's content */
  sha256?: string;
}

export interface ImageFacts {
  digest: string;
  config: ConfigFacts;
  /** the merged file tree of every layer, only under the requested paths; sorted by path */
  tree: TreeEntry[];
}

/** Reads an image's compared config fields and, under `paths`, its merged file tree (whiteouts applied). */
export async function readImageFacts(registry: RegistryClient, repository: string, reference: string, paths: readonly string[], signal?: AbortSignal): Promise<ImageFacts> {
  const image = await readImage(registry, repository, reference, signal);
  const manifestBytes = await registry.manifest(repository, image.digest, signal);
  const configDigest = manifestBytes === null ? null : z.object({ config: z.object({ digest: z.string() }) }).parse(JSON.parse(Buffer.from(manifestBytes.bytes).toString('utf8'))).config.digest;
  const raw = configDigest === null ? {} : (JSON.parse(Buffer.from(await registry.blob(repository, configDigest, signal)).toString('utf8')) as unknown);
  const config = normaliseConfig(ConfigBlob.parse(raw).config ?? {});
  const tree = new Map<string, TreeEntry>();
  if (paths.length > 0) for (const layer of image.layers) await applyLayer(registry, repository, layer, tree, signal);
  const wanted = [...tree.values()].filter((e) => paths.some((p) => e.path === p || e.path.startsWith(`${p}/`))).sort((a, b) => (a.path < b.path ? -1 : 1));
  return { digest: image.digest, config, tree: wanted };
}

function normaliseConfig(c: z.infer<typeof RunConfig>): ConfigFacts {
  const out: ConfigFacts = {};
  for (const field of COMPARED_FIELDS) {
    let value: unknown = c[field];
    if (field === 'Labels' && value !== null && value !== undefined) {
      value = Object.fromEntries(Object.entries(value as Record<string, string>).filter(([k]) => !OWN_LABEL.test(k)).sort(([a], [b]) => (a < b ? -1 : 1)));
    }
    if (field === 'Healthcheck' && value !== null && value !== undefined) {
      // Builders write unset durations as 0 or leave them out: both mean "the default".
      value = Object.fromEntries(Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== 0 && v !== null && v !== undefined));
    }
    if ((field === 'ExposedPorts' || field === 'Volumes') && value !== null && value !== undefined) value = Object.keys(value as Record<string, unknown>).sort();
    // "/" is where a process starts when no WorkingDir is set; BuildKit writes it for a scratch stage.
    if (field === 'WorkingDir' && value === '/') value = undefined;
    if (!isEmpty(value)) out[field] = value;
  }
  return out;
}

function isEmpty(v: unknown): boolean {
  if (v === undefined || v === null || v === '') return true;
  if (Array.isArray(v)) return v.length === 0;
  return typeof v === 'object' && Object.keys(v).length === 0;
}

/** Applies one layer's tar over the tree: entries replace, `.wh.NAME` deletes, `.wh..wh..opq` empties a directory. */
async function applyLayer(registry: RegistryClient, repository: string, layer: { digest: string; mediaType: string }, tree: Map<string, TreeEntry>, signal?: AbortSignal): Promise<void> {
  const body = Readable.fromWeb((await registry.blobStream(repository, layer.digest, signal)) as WebReadableStream<Uint8Array>);
  const removeUnder = (dir: string, keepSelf: boolean): void => {
    for (const key of [...tree.keys()]) if (key.startsWith(`${dir}/`) || (!keepSelf && key === dir)) tree.delete(key);
  };
  const added = new Set<string>();
  const parser = new Parser({
    onReadEntry: (entry: ReadEntry) => {
      const path = `/${entry.path.replace(/^\.?\/+/, '').replace(/\/+$/, '')}`.replace(/^\/$/, '/');
      const slash = path.lastIndexOf('/');
      const parent = path.slice(0, slash) || '/';
      const base = path.slice(slash + 1);
      if (base === '.wh..wh..opq') {
        // Opaque: what lower layers had in this directory is gone; this layer's own entries stay.
        for (const key of [...tree.keys()]) if (key.startsWith(`${parent === '/' ? '' : parent}/`) && !added.has(key)) tree.delete(key);
        entry.resume();
        return;
      }
      if (base.startsWith('.wh.')) {
        removeUnder(`${parent === '/' ? '' : parent}/${base.slice(4)}`, false);
        entry.resume();
        return;
      }
      const type = typeOf(entry.type);
      const owner = `${entry.uid ?? 0}:${entry.gid ?? 0}`;
      const mode = ((entry.mode ?? 0) & 0o7777).toString(8).padStart(4, '0');
      if (type !== 'dir') removeUnder(path, true);
      const record: TreeEntry = { path, type, mode, owner, ...(entry.linkpath ? { link: entry.linkpath } : {}) };
      tree.set(path, record);
      added.add(path);
      if (type !== 'file') {
        entry.resume();
        return;
      }
      const hash = createHash('sha256');
      entry.on('data', (c: Buffer) => hash.update(c));
      entry.on('end', () => {
        record.sha256 = hash.digest('hex').slice(0, 16);
      });
    },
  });
  const gzipped = layer.mediaType.endsWith('gzip');
  if (gzipped) await pipeline(body, createGunzip(), parser);
  else await pipeline(body, parser);
}

function typeOf(t: string): TreeEntry['type'] {
  switch (t) {
    case 'File':
    case 'OldFile':
    case 'ContiguousFile':
      return 'file';
    case 'Directory':
      return 'dir';
    case 'SymbolicLink':
      return 'symlink';
    case 'Link':
      return 'hardlink';
    default:
      return 'other';
  }
}

/** One line per entry, for diffs a person reads. */
export function treeLine(e: TreeEntry): string {
  return `${e.path} ${e.type} ${e.mode} ${e.owner}${e.link === undefined ? '' : ` -> ${e.link}`}${e.sha256 === undefined ? '' : ` ${e.sha256}`}`;
}
