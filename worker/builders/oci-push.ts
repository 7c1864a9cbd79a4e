import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { ErrorCode, FleetError } from '../../protocol/index.ts';
import { pushWithRetries } from './push-retry.ts';
import { runTool } from './run-tool.ts';
import type { BuildOutput } from './types.ts';

const OciIndex = z.object({ manifests: z.array(z.object({ digest: z.string() })).length(1) });

/**
 * The manifest digest of a single-image OCI layout (what a sandboxed builder wrote); E_BUILD_FAILED
 * when the layout holds no image or more than one.
 */
export async function layoutDigest(layout: string, builder: string): Promise<string> {
  const index = OciIndex.safeParse(JSON.parse(await readFile(join(layout, 'index.json'), 'utf8').catch(() => '{}')));
  if (!index.success) throw new FleetError(ErrorCode.E_BUILD_FAILED, `${builder} wrote no single-image OCI layout`);
  return index.data.manifests[0]?.digest ?? '';
}

/**
 * Pushes a single-image OCI layout to every destination with the pool's push credentials, from the
 * worker: builders run the Dockerfile's RUN steps in a network namespace that cannot reach the
 * registry, and never hold the push credentials. Each push must land the layout's own manifest
 * digest (`expected`, what the builder reported), or the build fails with E_DIGEST_MISMATCH.
 */
export async function pushLayout(
  layout: string,
  destinations: readonly string[],
  expected: string,
  opts: { env: Record<string, string>; workDir: string; insecureRegistries: readonly string[]; authFile?: string | undefined; output: BuildOutput; signal: AbortSignal; builder: string },
): Promise<string> {
  const digest = await layoutDigest(layout, opts.builder);
  if (expected !== digest) throw new FleetError(ErrorCode.E_DIGEST_MISMATCH, `${opts.builder} reported ${expected}, its layout holds ${digest}`);
  for (const [i, destination] of destinations.entries()) {
    const digestFile = join(opts.workDir, `pushed-${i}`);
    await pushWithRetries(destination, () => runTool('skopeo', skopeoCopyArgs(layout, destination, digestFile, opts.insecureRegistries, opts.authFile), { env: opts.env, cwd: opts.workDir, output: opts.output, signal: opts.signal }), opts.output, opts.signal);
    const pushed = (await readFile(digestFile, 'utf8')).trim();
    if (pushed !== digest) throw new FleetError(ErrorCode.E_DIGEST_MISMATCH, `${destination} got ${pushed}, ${opts.builder} built ${digest}`);
  }
  return digest;
}

/** `skopeo copy` of a single-image OCI layout to one destination, keeping its digest. */
export function skopeoCopyArgs(layout: string, destination: string, digestFile: string, insecureRegistries: readonly string[], authFile?: string): string[] {
  const host = destination.slice(0, destination.indexOf('/'));
  return [
    'copy', '--quiet', '--preserve-digests', '--retry-times', '3', '--digestfile', digestFile,
    ...(authFile === undefined ? [] : ['--dest-authfile', authFile]),
    ...(insecureRegistries.includes(host) ? ['--dest-tls-verify=false'] : []),
    `oci:${layout}`, `docker://${destination}`,
  ];
}
