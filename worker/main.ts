/**
 * Worker process entry: `node --import tsx worker/main.ts --config worker.json`.
 * Exit codes: 0 drained (current build finished), 75 drained but the current build was handed
 * back to the queue (grace ran out), 130 second signal, 2 bad configuration, 3 refused to run as root.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { ErrorCode, isFleetError } from '../protocol/index.ts';
import { createLogger } from '../adapters/logger.ts';
import { assertNotRoot } from './not-root.ts';
import { startWorker } from './worker.ts';

const log = createLogger('fleet-worker');

async function main(): Promise<number> {
  assertNotRoot();
  const { values } = parseArgs({ options: { config: { type: 'string' } } });
  if (values.config === undefined) {
    log.error('usage: worker/main.ts --config <worker.json>');
    return 2;
  }
  const options: unknown = JSON.parse(await readFile(values.config, 'utf8'));
  const worker = await startWorker(options as Parameters<typeof startWorker>[0], log);
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    signals += 1;
    if (signals > 1) {
      log.warn({ sig }, 'second signal: exiting at once');
      process.exit(130);
    }
    void worker.drain();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  await worker.done;
  return worker.handedBack ? 75 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (isFleetError(e, ErrorCode.E_WORKER_AS_ROOT)) {
      log.fatal({ code: e.code }, e.message);
      process.exit(3);
    }
    log.fatal({ err: e }, 'worker failed to start');
    process.exit(isFleetError(e, ErrorCode.E_INVALID_REQUEST) ? 2 : 1);
  },
);
