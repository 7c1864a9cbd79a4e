import { mkdir, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const SRC = fileURLToPath(new URL('./src/', import.meta.url));
/** Kept in step with coordinator/ui-assets.ts UI_DIST (ui/ sits above coordinator/ in no layer: it is not imported). */
export const DEFAULT_OUT = fileURLToPath(new URL('./dist/', import.meta.url));

/**
 * Bundles the web console (ui/src) into `out`: one hashed script and stylesheet under assets/, and
 * index.html naming them. No inline script or style, so the coordinator's CSP can be default-src 'self'.
 */
export async function buildUi(out: string = DEFAULT_OUT): Promise<{ files: string[] }> {
  await rm(out, { recursive: true, force: true });
  await mkdir(join(out, 'assets'), { recursive: true });
  const result = await build({
    entryPoints: { app: join(SRC, 'main.tsx') },
    bundle: true,
    minify: true,
    format: 'esm',
    target: ['chrome120', 'firefox120', 'safari17'],
    outdir: join(out, 'assets'),
    entryNames: '[name]-[hash]',
    assetNames: '[name]-[hash]',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    tsconfig: join(SRC, 'tsconfig.json'),
    metafile: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  const files = Object.keys(result.metafile.outputs).map((f) => basename(f));
  const script = files.find((f) => f.endsWith('.js'));
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

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { files } = await buildUi(process.argv[2] ?? DEFAULT_OUT);
  process.stdout.write(`ui built: ${files.join(', ')}\n`);
}
