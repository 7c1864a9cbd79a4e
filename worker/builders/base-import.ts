import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { z } from 'zod';
import { ErrorCode, FleetError } from '../../protocol/index.ts';
import { baseUses } from '../base-policy.ts';
import { fromImages, instructions } from '../official-bases.ts';
import { linkBlobs } from './oci-layout.ts';
import { quietOutput } from './output-tap.ts';
import { runTool } from './run-tool.ts';
import type { BuildOutput, BuildPlan } from './types.ts';

/** One FROM image of a build, brought into the worker's local OCI layout. */
export interface ImportedBase {
  /** the image as the FROM line names it, build args expanded */
  image: string;
  /** manifest digest in the layout (skopeo may have converted the registry's manifest to OCI: not the registry's digest) */
  digest: string;
  /** `repository@digest`: a reference a builder resolves from the layout, never from the registry */
  pinned: string;
}

const OciManifest = z.object({ config: z.object({ digest: z.string() }), layers: z.array(z.object({ digest: z.string() })) });

/**
 * The worker's own store of base images (an OCI layout under its state dir). Sandboxed builders
 * (BuildKit, kaniko) run RUN steps in a network namespace that cannot reach the fleet's registry,
 * and so cannot pull from it either: the worker, which holds the pull credentials, copies each
 * FROM image here with skopeo before the build, and the builder reads it from disk. Blobs already
 * here are not fetched again (skopeo reuses them); a digest-pinned FROM seen before costs no
 * registry request at all.
 */
export class BaseStore {
  readonly layout: string;
  /** `image@sha256:…` as written → digest in the layout */
  private readonly pinned = new Map<string, string>();

  constructor(
    dir: string,
    private readonly env: Record<string, string>,
    private readonly insecureRegistries: readonly string[],
    /** docker config the copies read with; absent: skopeo's default (REGISTRY_AUTH_FILE in env) */
    private readonly authFile?: string,
    /**
     * a read-only store of the platform's blobs laid out as an OCI layout's (`blobs/sha256/…`: the
     * content store of the node's BuildKit seed root): linked in before the first copy, so skopeo
     * finds the official bases' layers here and fetches only their manifests and configs
     */
    private readonly borrowFrom?: string,
  ) {
    this.layout = join(dir, 'oci');
  }

  private borrowed: Promise<void> | undefined;

  /**
   * Links the node's layer blobs in, once (content-addressed, never written in place: safe to
   * share). Layers only: skopeo writes a manifest over the file of its digest, which a shared
   * read-only link would refuse.
   */
  private borrow(): Promise<void> {
    const from = this.borrowFrom;
    if (from === undefined) return Promise.resolve();
    this.borrowed ??= layersIn(from).then((layers) => linkBlobs(from, layers, this.layout), () => undefined);
    return this.borrowed;
  }

  /**
   * Brings in every image the Dockerfile pulls: its FROM lines (stages and `scratch` aside), and
   * the images a `COPY --from=` or `RUN --mount=…,from=` names instead of a stage (the worker
   * checked them against the same base policy before the build).
   */
  async importBases(plan: BuildPlan, output: BuildOutput, signal: AbortSignal): Promise<ImportedBase[]> {
    await mkdir(this.layout, { recursive: true, mode: 0o700 });
    await this.borrow();
    const images = [...new Set(baseUses(await readFile(plan.dockerfile, 'utf8'), plan.buildArgs).map((u) => u.image).filter((i) => i !== ''))];
    const resolved = new Map((plan.resolvedBases ?? []).map((b) => [b.name, b.digest]));
    const imported: ImportedBase[] = [];
    for (const image of images) {
      // A tag the worker already resolved is copied by that digest, which cannot move: one this
      // store holds costs no skopeo run (a warm worker's usual case), and the image copied is the
      // one resolved (and, for official bases, verified), even if the tag moves meanwhile.
      const registryDigest = image.includes('@sha256:') ? undefined : resolved.get(image);
      const source = registryDigest === undefined ? image : `${repositoryOf(image)}@${registryDigest}`;
      const digest = this.pinned.get(source) ?? (await this.copy(source, plan.workDir, output, signal));
      if (source.includes('@sha256:')) this.pinned.set(source, digest);
      imported.push({ image, digest, pinned: `${repositoryOf(image)}@${digest}` });
    }
    return imported;
  }

  private async copy(image: string, workDir: string, output: BuildOutput, signal: AbortSignal): Promise<string> {
    const digestFile = join(workDir, 'base-digest');
    const host = image.includes('/') ? image.slice(0, image.indexOf('/')) : '';
    const run = await runTool(
      'skopeo',
      [
        'copy', '--quiet', '--retry-times', '3', '--digestfile', digestFile,
        ...(this.insecureRegistries.includes(host) ? ['--src-tls-verify=false'] : []),
        ...(this.authFile === undefined ? [] : ['--src-authfile', this.authFile]),
        `docker://${image}`, `oci:${this.layout}:${layoutName(image)}`,
      ],
      { env: this.env, cwd: workDir, output: quietOutput(output), signal },
    );
    if (run.cancelled) throw new FleetError(ErrorCode.E_CANCELLED, 'build cancelled');
    if (run.exitCode !== 0) throw new FleetError(ErrorCode.E_REGISTRY_UNAVAILABLE, `could not pull base image ${image} (skopeo exited ${String(run.exitCode)})`);
    const digest = (await readFile(digestFile, 'utf8')).trim();
    await rm(digestFile, { force: true });
    await output.line('system', `base ${image} = ${digest}`);
    return digest;
  }

  /** Path of a blob in the layout. */
  blob(digest: string): string {
    return join(this.layout, 'blobs', ...digest.split(':'));
  }

  /** The config and layer digests of an image in the layout. */
  async manifest(digest: string): Promise<z.infer<typeof OciManifest>> {
    return OciManifest.parse(JSON.parse(await readFile(this.blob(digest), 'utf8')));
  }

  /**
   * Writes the image as a docker-archive tarball (`manifest.json`, config, compressed layers as
   * they are in the layout): the form kaniko's `--cache-dir` holds a base in, named by digest.
   */
  async writeTarball(digest: string, dest: string, signal: AbortSignal): Promise<void> {
    const manifest = await this.manifest(digest);
    const staging = `${dest}.staging`;
    await mkdir(staging, { recursive: true });
    const file = (d: string): string => ['blobs', ...d.split(':')].join('/');
    await writeFile(join(staging, 'manifest.json'), JSON.stringify([{ Config: file(manifest.config.digest), RepoTags: [], Layers: manifest.layers.map((l) => file(l.digest)) }]));
    try {
      await execa('tar', ['-cf', `${dest}.tmp`, '-C', staging, 'manifest.json', '-C', this.layout, file(manifest.config.digest), ...new Set(manifest.layers.map((l) => file(l.digest)))], { cancelSignal: signal, stdin: 'ignore' });
      await execa('mv', ['-f', `${dest}.tmp`, dest], { stdin: 'ignore' });
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }
}

/** The layer digests the manifests among a layout's blobs name (small JSON blobs are read; layers are not). */
async function layersIn(layout: string): Promise<string[]> {
  const dir = join(layout, 'blobs', 'sha256');
  const layers = new Set<string>();
  for (const name of await readdir(dir)) {
    const path = join(dir, name);
    if ((await stat(path)).size > 1 << 20) continue;
    let json: unknown;
    try {
      json = JSON.parse(await readFile(path, 'utf8'));
    } catch {
      continue;
    }
    const manifest = OciManifest.safeParse(json);
    if (manifest.success) for (const l of manifest.data.layers) layers.add(l.digest);
  }
  return [...layers].filter((d) => existsSync(join(layout, 'blobs', ...d.split(':'))));
}

/** `host/a/b:tag@sha256:…` → `host/a/b` */
export function repositoryOf(image: string): string {
  const noDigest = image.replace(/@.*$/, '');
  const slash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  return colon > slash ? noDigest.slice(0, colon) : noDigest;
}

/** A name the OCI layout's index may hold (one entry per image as written: a re-copy replaces it). */
function layoutName(image: string): string {
  return image.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 128);
}

/**
 * The Dockerfile with each FROM image that was imported replaced by its pinned reference, for a
 * builder that resolves a tag through the registry even when it holds the image (kaniko). FROMs
 * are found by the same reader as everywhere (`fromImages`: ARGs in two levels, `${X:-d}`,
 * flags, continuations); the image token is replaced on the line the FROM starts on.
 */
export function pinFromLines(dockerfile: string, buildArgs: Readonly<Record<string, string>>, bases: readonly ImportedBase[]): string {
  const lines = dockerfile.split('\n');
  for (const from of fromImages(dockerfile, buildArgs)) {
    const base = bases.find((b) => b.image === from.image);
    const at = from.line - 1;
    const text = lines[at];
    if (base === undefined || text === undefined) continue;
    // the image is the first operand after FROM and its flags
    lines[at] = text.replace(/^(\s*FROM\s+(?:--\S+\s+)*)(\S+)/i, (whole, head: string, token: string) => (token === from.raw ? `${head}${base.pinned}` : whole));
  }
  return lines.join('\n');
}

/** the stages `kanikoCopyFromStages` adds: a name no Dockerfile of ours uses */
const COPY_FROM_STAGE = 'fleet-copy-from-';

/**
 * kaniko fetches a `COPY --from=<image>` straight from the registry (its base cache serves FROM
 * lines only), which its sandbox cannot reach. So each imported image a COPY --from names becomes
 * a stage of its own, `FROM <store reference> AS fleet-copy-from-N`, put before the first FROM
 * (after the global ARGs), which kaniko reads from its base cache like any pinned FROM; the COPY
 * names that stage, and a COPY --from=<index> is shifted past the added stages. Call after
 * `pinFromLines` (it reads the Dockerfile's own line numbers).
 */
export function kanikoCopyFromStages(dockerfile: string, bases: readonly ImportedBase[]): string {
  const lines = dockerfile.split('\n');
  const all = instructions(dockerfile);
  const copies = all.filter((i) => /^COPY\s/i.test(i.text));
  const wanted = [...new Set(copies.flatMap((i) => /\s--from=(\S+)/.exec(i.text)?.[1] ?? []))].flatMap((image) => bases.find((b) => b.image === image) ?? []);
  const firstFrom = all.find((i) => /^FROM\s/i.test(i.text));
  if (wanted.length === 0 || firstFrom === undefined) return dockerfile;
  const stageOf = new Map(wanted.map((b, n) => [b.image, `${COPY_FROM_STAGE}${n}`]));
  for (const { line } of copies) {
    for (let at = line - 1; at < lines.length; at++) {
      const physical = lines[at] ?? '';
      lines[at] = physical.replace(/(\s--from=)(\S+)/, (whole, flag: string, from: string) => {
        if (/^\d+$/.test(from)) return `${flag}${Number(from) + wanted.length}`;
        const stage = stageOf.get(from);
        return stage === undefined ? whole : `${flag}${stage}`;
      });
      if (!/\\\s*$/.test(physical)) break;
    }
  }
  lines.splice(firstFrom.line - 1, 0, ...wanted.map((b) => `FROM ${b.pinned} AS ${stageOf.get(b.image) ?? ''}`));
  return lines.join('\n');
}
