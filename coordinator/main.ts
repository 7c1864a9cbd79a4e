/**
 * Coordinator process entry (deploy/kubernetes): `node --import tsx coordinator/main.ts --config coordinator.json`.
 * SIGTERM or SIGINT closes it in two phases (no new work, then in-flight work finishes); a
 * second signal exits at once. Exit codes: 0 closed, 130 second signal, 2 bad configuration.
 */
import { createLogger } from '../adapters/logger.ts';
import { onStopSignals, runProcess } from '../adapters/process-entry.ts';
import { parseWith } from '../protocol/index.ts';
import { CoordinatorOptions } from './config.ts';
import { startCoordinator } from './coordinator.ts';

const log = createLogger('fleet-coordinator');

runProcess('coordinator', log, async (options) => {
  const coordinator = await startCoordinator(parseWith(CoordinatorOptions, options, 'coordinator options'), log);
  await new Promise<void>((resolve) => onStopSignals(() => void coordinator.close().then(resolve), log));
  return 0;
});
