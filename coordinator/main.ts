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
  const config = parseWith(CoordinatorOptions, options, 'coordinator options');
  // Signals are taken from the start: one that comes while the coordinator is still starting
  // (its HTTP port may already answer) closes it once started, instead of killing it mid-start.
  let stopRequested!: () => void;
  const stopping = new Promise<void>((resolve) => {
    stopRequested = resolve;
  });
  onStopSignals(() => stopRequested(), log);
  const coordinator = await startCoordinator(config, log);
  await stopping;
  await coordinator.close();
  return 0;
});
