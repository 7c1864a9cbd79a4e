/**
 * Worker process entry: `node --import tsx worker/main.ts --config worker.json`.
 * Exit codes: 0 drained (current build finished), 75 drained but the current build was handed
 * back to the queue (grace ran out), 130 second signal, 2 bad configuration, 3 refused to run as root.
 */
import { ErrorCode, isFleetError, parseWith } from '../protocol/index.ts';
import { createLogger } from '../adapters/logger.ts';
import { fleetEnvironment } from '../adapters/environment.ts';
import { onStopSignals, runProcess } from '../adapters/process-entry.ts';
import { assertNotRoot } from './not-root.ts';
import { WorkerOptions } from './config.ts';
import { startWorker } from './worker.ts';

const log = createLogger('fleet-worker');

runProcess(
  'worker',
  log,
  async (options) => {
    assertNotRoot();
    const maxBuilds = fleetEnvironment().FLEET_WORKER_MAX_BUILDS;
    const worker = await startWorker(parseWith(WorkerOptions, maxBuilds === undefined ? options : { ...(options as object), maxBuilds }, 'worker options'), log);
    onStopSignals(() => void worker.drain(), log);
    await worker.done;
    return worker.handedBack ? 75 : 0;
  },
  (e) => {
    if (!isFleetError(e, ErrorCode.E_WORKER_AS_ROOT)) return undefined;
    log.fatal({ code: e.code }, e.message);
    return 3;
  },
);
