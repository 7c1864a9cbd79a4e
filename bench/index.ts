/**
 * `npm run bench [-- overhead|logs|context|standard|builders|sandbox|intake|gates|extract|ui|images|scale|chaos|all]`: printed, not asserted (numbers belong to the
 * machine). Each prints a Markdown table.
 */
const which = process.argv[2] ?? 'overhead';
// A bench that exports `main` runs it (importing it only declares its measures); older ones run on import.
const benches: Record<string, () => Promise<{ main?: () => Promise<void> }>> = {
  overhead: () => import('./overhead.ts'),
  logs: () => import('./logs.ts'),
  context: () => import('./context.ts'),
  standard: () => import('./standard.ts'),
  builders: () => import('./builders.ts'),
  sandbox: () => import('./sandbox.ts'),
  intake: () => import('./intake.ts'),
  gates: () => import('./gates.ts'),
  extract: () => import('./extract.ts'),
  ui: () => import('./ui.ts'),
  images: () => import('./fleet-images.ts'),
  scale: () => import('./scale.ts'),
  chaos: () => import('./chaos.ts'),
  /** every fast bench, one table against the targets */
  all: () => import('./all.ts'),
};
const run = benches[which];
if (run === undefined) {
  console.error(`unknown bench "${which}"; one of: ${Object.keys(benches).join(', ')}`);
  process.exit(2);
}
const mod = await run();
await mod.main?.();
