import { readdir, rename, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { z } from 'zod';
import { quietOutput } from './output-tap.ts';
import { runTool } from './run-tool.ts';
import type { BuildOutput } from './types.ts';
import type { RegistryClient } from '../../adapters/registry-client.ts';

interface CacheCopy {
  env: Record<string, string>;
  workDir: string;
  insecureRegistries: readonly string[];
  output: BuildOutput;
  signal: AbortSignal;
}

const hostOf = (reference: string): string => reference.slice(0, reference.indexOf('/'));

/** how long the cache's manifest request may take before the worker copies the cache in anyway */
const HEAD_TIMEOUT_MS = 10_000;

/**
 * The digest of the layer cache `reference` (`host/cache/app/x:buildkit`) in the registry: null
 * when it has none; undefined when the registry did not say (unreachable, refused): the caller
 * copies the cache in as before. One request for the manifest (a couple of KB; its digest computed
 * from the bytes, not taken from a header, so "none" can only mean a 404).
 */
export async function registryCacheDigest(reference: string, registry: (host: string) => RegistryClient, signal: AbortSignal): Promise<string | null | undefined> {
  const host = hostOf(reference);
  const path = reference.slice(host.length + 1);
  const colon = path.lastIndexOf(':');
  if (colon <= 0) return undefined;
  try {
    return (await registry(host).manifest(path.slice(0, colon), path.slice(colon + 1), AbortSignal.any([signal, AbortSignal.timeout(HEAD_TIMEOUT_MS)])))?.digest ?? null;
  } catch {
    return undefined;
  }
}

/**
 * Brings an app's layer cache from the registry (`reference`, an image whose manifest BuildKit
 * wrote with `image-manifest=true`) into the local OCI layout DIR the sandboxed builder imports
 * from, tagged `latest`. Blobs already there are not fetched again. Returns whether a cache came
 * in: none yet (the app's first build) or an unreadable one means a cold build, said in the log,
 * never a failure.
 */
export async function pullLayerCache(reference: string, dir: string, opts: CacheCopy): Promise<boolean> {
  const run = await runTool(
    'skopeo',
    ['copy', '--quiet', '--preserve-digests', '--retry-times', '2', ...(opts.insecureRegistries.includes(hostOf(reference)) ? ['--src-tls-verify=false'] : []), `docker://${reference}`, `oci:${dir}:latest`],
    { env: opts.env, cwd: opts.workDir, output: quietOutput(opts.output), signal: opts.signal },
  );
  if (run.exitCode === 0) return true;
  if (!run.cancelled) await opts.output.line('system', `no layer cache read from ${reference}: building without it`);
  // A half-written layout would fail the import: the next export starts it afresh.
  await rm(dir, { recursive: true, force: true });
  return false;
}

/**
 * Pushes the layer cache the builder exported into DIR back to the registry, with the pool's
 * credentials, so a fresh worker builds the app warm. A failed push costs the next build its
 * cache, not this build its image: said in the log, not thrown.
 */
export async function pushLayerCache(dir: string, reference: string, opts: CacheCopy & { authFile?: string | undefined }): Promise<void> {
  const run = await runTool(
    'skopeo',
    [
      'copy', '--quiet', '--preserve-digests', '--retry-times', '2',
      ...(opts.authFile === undefined ? [] : ['--dest-authfile', opts.authFile]),
      ...(opts.insecureRegistries.includes(hostOf(reference)) ? ['--dest-tls-verify=false'] : []),
      `oci:${dir}:latest`, `docker://${reference}`,
    ],
    { env: opts.env, cwd: opts.workDir, output: quietOutput(opts.output), signal: opts.signal },
  );
  if (run.exitCode !== 0 && !run.cancelled) await opts.output.line('system', `warning: the layer cache could not be pushed to ${reference} (skopeo exited ${String(run.exitCode)}); the next fresh worker builds this app cold`);
}

/** kaniko's cache keys: one image per cached step, tagged with the key's sha256 hex */
const KANIKO_KEY = /^[a-f0-9]{64}$/;

/**
 * kaniko's layer cache: one image per cached step, `REPOSITORY:<key>` in the registry and
 * `DIR/layers:<key>` (an OCI layout each) in the `oci:` cache repository kaniko writes under
 * isolation. Copies the keys the registry has and DIR lacks; returns the keys the registry had,
 * so the push after the build sends only new ones.
 */
export async function pullKanikoCache(repository: string, dir: string, opts: CacheCopy): Promise<Set<string>> {
  const tls = opts.insecureRegistries.includes(hostOf(repository)) ? ['--tls-verify=false'] : [];
  const listed = await skopeoJson(['list-tags', ...tls, `docker://${repository}`], opts);
  const tags = new Set((listed?.Tags ?? []).filter((t) => KANIKO_KEY.test(t)));
  const local = new Set(await localKeys(dir));
  for (const key of tags) {
    if (local.has(key)) continue;
    // skopeo's `oci:PATH:REF` cannot name a path holding ':': copy beside it, then rename.
    const staging = join(dir, `pull-${key}`);
    const run = await runTool('skopeo', ['copy', '--quiet', '--preserve-digests', ...(tls.length > 0 ? ['--src-tls-verify=false'] : []), `docker://${repository}:${key}`, `oci:${staging}`], { env: opts.env, cwd: opts.workDir, output: quietOutput(opts.output), signal: opts.signal });
    if (run.exitCode === 0) await rename(staging, join(dir, `layers:${key}`));
    else await rm(staging, { recursive: true, force: true });
  }
  return tags;
}

/** Pushes the cache keys kaniko wrote under DIR that the registry did not have (`known`). */
export async function pushKanikoCache(dir: string, repository: string, known: ReadonlySet<string>, opts: CacheCopy & { authFile?: string | undefined }): Promise<void> {
  const tls = opts.insecureRegistries.includes(hostOf(repository)) ? ['--dest-tls-verify=false'] : [];
  let failed = 0;
  for (const key of await localKeys(dir)) {
    if (known.has(key)) continue;
    const alias = join(dir, `push-${key}`);
    await rm(alias, { force: true });
    await symlink(`layers:${key}`, alias);
    const run = await runTool('skopeo', ['copy', '--quiet', '--preserve-digests', ...(opts.authFile === undefined ? [] : ['--dest-authfile', opts.authFile]), ...tls, `oci:${alias}`, `docker://${repository}:${key}`], { env: opts.env, cwd: opts.workDir, output: quietOutput(opts.output), signal: opts.signal });
    await rm(alias, { force: true });
    if (run.exitCode !== 0) failed += 1;
  }
  if (failed > 0) await opts.output.line('system', `warning: ${failed} layer cache entries could not be pushed to ${repository}; a fresh worker rebuilds those steps`);
}

async function localKeys(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [])).filter((n) => n.startsWith('layers:')).map((n) => n.slice('layers:'.length)).filter((k) => KANIKO_KEY.test(k));
}

const ListedTags = z.object({ Tags: z.array(z.string()).nullable() });

/** `skopeo list-tags` output, or null when the repository does not exist yet (or cannot be read). */
async function skopeoJson(args: string[], opts: CacheCopy): Promise<z.infer<typeof ListedTags> | null> {
  const run = await execa('setpriv', ['--pdeathsig', 'TERM', '--', 'skopeo', ...args], { env: opts.env, extendEnv: false, cwd: opts.workDir, reject: false, cancelSignal: opts.signal, stdin: 'ignore' });
  if (run.exitCode !== 0) return null;
  try {
    const parsed = ListedTags.safeParse(JSON.parse(run.stdout));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}
