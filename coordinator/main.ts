/**
 * Coordinator process entry (deploy/kubernetes): `node --import tsx coordinator/main.ts --config coordinator.json`.
 * SIGTERM or SIGINT closes it in two phases (no new work, then in-flight work finishes); a
 * second signal exits at once. Exit codes: 0 closed, 130 second signal, 2 bad configuration.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { ErrorCode, isFleetError } from '../protocol/index.ts';
import { createLogger } from '../adapters/logger.ts';
import { startCoordinator } from './coordinator.ts';

const log = createLogger('fleet-coordinator');

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { config: { type: 'string' } } });
  if (values.config === undefined) {
    log.error('usage: coordinator/main.ts --config <coordinator.json>');
    return 2;
  }
  const options: unknown = JSON.parse(await readFile(values.config, 'utf8'));
  const coordinator = await startCoordinator(options as Parameters<typeof startCoordinator>[0], log);
  const closed = new Promise<void>((resolve) => {
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals): void => {
      signals += 1;
      if (signals > 1) {
        log.warn({ sig }, 'second signal: exiting at once');
        process.exit(130);
      }
      void coordinator.close().then(resolve);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  await closed;
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    log.fatal({ err: e }, 'coordinator failed to start');
    process.exit(isFleetError(e, ErrorCode.E_INVALID_REQUEST) ? 2 : 1);
  },
);
