import { chmod, copyFile, cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { cacheBin } from '../../adapters/environment.ts';
import { buildUi } from '../../ui/build.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface ImageRecipe {
  /** the folder of images/fleet/ holding its Dockerfile */
  dockerfile: string;
  buildArgs: Readonly<Record<string, string>>;
  /** the bootstrap's pinned binaries (in the fleet's cache bin dir) copied into the image's /usr/local/bin */
  binaries: readonly string[];
}

/** The fleet's own images: each a custom build on the official base, built by the fleet itself. */
export const FLEET_IMAGES = {
  coordinator: { dockerfile: 'coordinator', buildArgs: {}, binaries: [] },
  scanner: { dockerfile: 'scanner', buildArgs: {}, binaries: ['grype'] },
  // the pinned Buildah (scripts/versions.env) in /usr/local/bin, ahead of Debian's; Debian's package
  // still brings containers-common, libseccomp and the CNI plugins it runs with
  'worker-buildah': { dockerfile: 'worker', buildArgs: { PACKAGES: 'buildah' }, binaries: ['buildah'] },
  'worker-buildkit': { dockerfile: 'worker', buildArgs: { PACKAGES: 'rootlesskit' }, binaries: ['buildkitd', 'buildctl'] },
  // kaniko's executor runs from the platform's signed kaniko image, under rootless podman
  'worker-kaniko': { dockerfile: 'worker', buildArgs: { PACKAGES: 'podman' }, binaries: [] },
} as const satisfies Record<string, ImageRecipe>;
export type FleetImage = keyof typeof FLEET_IMAGES;

/**
 * Files the compiled code reads beside itself at run time (by paths relative to its module, so
 * they keep the source layout): the version pins, the platform catalog and gate policy.
 */
const RUNTIME_FILES = ['package.json', 'package-lock.json', 'scripts/versions.env', 'images/platform'];

/**
 * Compiles the sources the images run (tsconfig.build.json) into `out` (the source layout, `.js`,
 * no TypeScript loader needed) with the data files they read and the web console's bundle (where
 * the coordinator serves it from: `ui/dist` beside `coordinator/`), then installs the production
 * dependencies there from the lock file (`npm ci --omit=dev`, no install scripts).
 */
export async function buildApp(out: string, signal?: AbortSignal): Promise<void> {
  await compileApp(out, signal);
  await execa('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: out, ...(signal === undefined ? {} : { cancelSignal: signal }) });
  // command shims: nothing in the images runs them
  await rm(join(out, 'node_modules/.bin'), { recursive: true, force: true });
}

/** buildApp without its dependencies: the compiled code, its data files and the console. */
export async function compileApp(out: string, signal?: AbortSignal): Promise<void> {
  await rm(out, { recursive: true, force: true });
  await execa('npx', ['tsc', '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', out], { cwd: ROOT, ...(signal === undefined ? {} : { cancelSignal: signal }) });
  for (const f of RUNTIME_FILES) {
    await mkdir(dirname(join(out, f)), { recursive: true });
    await cp(join(ROOT, f), join(out, f), { recursive: true });
  }
  await buildUi(join(out, 'ui/dist'));
}

/**
 * A build context for one of the fleet's images: its Dockerfile (images/fleet/<image>/), the
 * compiled app under `app/`, and under `bin/` the Node.js binary the bootstrap installed (Node 24
 * LTS, from the npm registry's node-linux-<arch> package) with the image's pinned tools. `app` is
 * a buildApp() output, shared by every image of one run.
 */
export async function imageContext(image: FleetImage, app: string, dir: string): Promise<{ dir: string; buildArgs: Readonly<Record<string, string>> }> {
  const recipe: ImageRecipe = FLEET_IMAGES[image];
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, 'bin'), { recursive: true });
  await cp(join(ROOT, 'images/fleet', recipe.dockerfile), dir, { recursive: true });
  // package-internal symlinks stay relative (the default would make them absolute host paths)
  await cp(app, join(dir, 'app'), { recursive: true, verbatimSymlinks: true });
  // bin/ becomes /usr/local/bin: node always (so the directory is never empty, which a context
  // upload would drop), then the image's pinned tools
  await copyFile(process.execPath, join(dir, 'bin', 'node'));
  await chmod(join(dir, 'bin', 'node'), 0o755);
  for (const b of recipe.binaries) await copyFile(join(cacheBin(), b), join(dir, 'bin', b));
  await writeFile(join(dir, '.dockerignore'), '# everything in this context is the image\n');
  return { dir, buildArgs: recipe.buildArgs };
}

/**
 * The environment an image's Dockerfile sets (`ENV k=v ...`, values bare or double-quoted): how
 * the image runs node (e.g. the coordinator's NODE_OPTIONS), for a bench that runs the compiled
 * app as the image does.
 */
export async function imageEnv(image: FleetImage): Promise<Record<string, string>> {
  const dockerfile = await readFile(join(ROOT, 'images/fleet', FLEET_IMAGES[image].dockerfile, 'Dockerfile'), 'utf8');
  const env: Record<string, string> = {};
  for (const line of dockerfile.split('\n')) {
    if (!line.startsWith('ENV ')) continue;
    for (const m of line.slice(4).matchAll(/([A-Za-z_][A-Za-z0-9_]*)=(?:"([^"]*)"|(\S*))/g)) env[m[1] ?? ''] = m[2] ?? m[3] ?? '';
  }
  return env;
}
