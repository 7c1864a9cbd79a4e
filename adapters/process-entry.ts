import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { ErrorCode, isFleetError } from '../protocol/index.ts';
import type { Logger } from './logger.ts';

/** Exit codes every fleet process shares; a process may add its own (the worker's 75, 3). */
export const EXIT = { OK: 0, FAILED: 1, BAD_CONFIG: 2, SECOND_SIGNAL: 130 } as const;

/**
 * Runs a process entry: `main` reads its options from `--config FILE` (JSON, validated by the
 * component itself) and resolves with the exit code. A start-up failure exits 2 for a bad
 * configuration, 1 otherwise, unless `exitCodeFor` names another code for it.
 */
export function runProcess(
  name: string,
  log: Logger,
  main: (options: unknown) => Promise<number>,
  exitCodeFor: (e: unknown) => number | undefined = () => undefined,
): void {
  const start = async (): Promise<number> => {
    const { values } = parseArgs({ options: { config: { type: 'string' } } });
    if (values.config === undefined) {
      log.error(`usage: ${name} --config <${name}.json>`);
      return EXIT.BAD_CONFIG;
    }
    return main(JSON.parse(await readFile(values.config, 'utf8')));
  };
  start().then(
    (code) => process.exit(code),
    (e: unknown) => {
      const special = exitCodeFor(e);
      if (special !== undefined) process.exit(special);
      log.fatal({ err: e }, `${name} failed to start`);
      process.exit(isFleetError(e, ErrorCode.E_INVALID_REQUEST) ? EXIT.BAD_CONFIG : EXIT.FAILED);
    },
  );
}

/**
 * The first SIGTERM or SIGINT starts `stop` (a drain: no new work, then in-flight work finishes);
 * a second one exits at once.
 */
export function onStopSignals(stop: () => void, log: Logger): void {
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    signals += 1;
    if (signals > 1) {
      log.warn({ sig }, 'second signal: exiting at once');
      process.exit(EXIT.SECOND_SIGNAL);
    }
    stop();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
