import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { runCorpus } from './run-corpus.ts';
import { formatReport } from './table.ts';

/**
 * `npm run conformance [-- --json] [--out FILE] [--only a,b] [--kaniko-workers N]`: builds the
 * corpus on every builder and prints the agreement table (`--json`: the whole report as JSON
 * instead; `--out`: also written to FILE as JSON); exit 1 when a difference is unexplained or a
 * documented one no longer happens.
 */
const { values } = parseArgs({
  options: { json: { type: 'boolean', default: false }, out: { type: 'string' }, only: { type: 'string' }, 'kaniko-workers': { type: 'string' }, quiet: { type: 'boolean', default: false } },
});
const stop = new AbortController();
process.once('SIGINT', () => stop.abort());
const report = await runCorpus({
  ...(values.only === undefined ? {} : { only: values.only.split(',') }),
  ...(values['kaniko-workers'] === undefined ? {} : { kanikoWorkers: Number(values['kaniko-workers']) }),
  ...(values.quiet ? {} : { progress: (line: string) => process.stderr.write(`${line}\n`) }),
  signal: stop.signal,
});
const json = `${JSON.stringify(report, null, 2)}\n`;
process.stdout.write(values.json ? json : `${formatReport(report)}\n`);
if (values.out !== undefined) await writeFile(values.out, json);
process.exitCode = report.summary.unexplainedDifferences === 0 && report.summary.staleDocumented === 0 ? 0 : 1;
