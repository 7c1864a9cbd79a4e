import { access, mkdir, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const SRC = fileURLToPath(new URL('./src/', import.meta.url));
/** Kept in step with coordinator/ui-assets.ts UI_DIST (ui/ sits above coordinator/ in no layer: it is not imported). */
export const DEFAULT_OUT = fileURLToPath(new URL('./dist/', import.meta.url));

const COMMON = {
  bundle: true,
  minify: true,
  target: ['chrome120', 'firefox120', 'safari17'],
  entryNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  tsconfig: join(SRC, 'tsconfig.json'),
  metafile: true as const,
  legalComments: 'none' as const,
  logLevel: 'warning' as const,
};

/**
 * Bundles the web console (ui/src) into `out`: hashed scripts (the page, and the log reader's
 * worker) and stylesheet under assets/, and index.html naming them. No inline script or style, so
 * the coordinator's CSP can be default-src 'self'. The worker is built first: the page is told its
 * hashed name (`__LOG_WORKER_URL__`), so a new worker also gives the page a new hash.
 */
export async function buildUi(out: string = DEFAULT_OUT): Promise<{ files: string[] }> {
  await rm(out, { recursive: true, force: true });
  await mkdir(join(out, 'assets'), { recursive: true });
  // A classic (iife) worker: module workers are not needed for one self-contained file.
  const worker = await build({ ...COMMON, entryPoints: { 'log-worker': join(SRC, 'log-worker.ts') }, format: 'iife', outdir: join(out, 'assets') });
  const workerFile = Object.keys(worker.metafile.outputs).map((f) => basename(f)).find((f) => f.endsWith('.js'));
  if (workerFile === undefined) throw new Error('ui build produced no log worker');
  const result = await build({
    ...COMMON,
    entryPoints: { app: join(SRC, 'main.tsx') },
    format: 'esm',
    outdir: join(out, 'assets'),
    jsx: 'automatic',
    jsxImportSource: 'preact',
    define: { __LOG_WORKER_URL__: JSON.stringify(`/ui/assets/${workerFile}`) },
  });
  const files = [...Object.keys(result.metafile.outputs).map((f) => basename(f)), workerFile];
  const script = files.find((f) => f.startsWith('app-') && f.endsWith('.js'));
  const style = files.find((f) => f.endsWith('.css'));
  if (script === undefined || style === undefined) throw new Error(`ui build produced no script or stylesheet: ${files.join(', ')}`);
  await writeFile(
    join(out, 'index.html'),
    `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>fleet console</title>
<link rel="stylesheet" href="/ui/assets/${style}">
<script type="module" src="/ui/assets/${script}"></script>
</head>
<body><div id="app"></div></body>
</html>
`,
  );
  return { files: ['index.html', ...files.map((f) => `assets/${f}`)] };
}

/**
 * Builds the console into `out` only if it has none (no `index.html`): `fleet up` and the demo on
 * a machine where `npm run ui:build` never ran. A console already built is left as it is, even if
 * older than its sources (`npm run ui:build` rebuilds it).
 */
export async function buildUiIfMissing(out: string = DEFAULT_OUT): Promise<boolean> {
  if (await access(join(out, 'index.html')).then(() => true, () => false)) return false;
  await buildUi(out);
  return true;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { files } = await buildUi(process.argv[2] ?? DEFAULT_OUT);
  process.stdout.write(`ui built: ${files.join(', ')}\n`);
}
