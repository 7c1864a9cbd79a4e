/**
 * Scanner process entry: `node --import tsx scanner/main.ts --config scanner.json`.
 * Exit codes: 0 stopped, 130 second signal, 2 bad configuration, 1 failed to start.
 */
import { parseWith } from '../protocol/index.ts';
import { createLogger } from '../adapters/logger.ts';
import { onStopSignals, runProcess } from '../adapters/process-entry.ts';
import { ScannerOptions, startScanner } from './scanner.ts';

const log = createLogger('fleet-scanner');

runProcess('scanner', log, async (options) => {
  const scanner = await startScanner(parseWith(ScannerOptions, options, 'scanner options'), log);
  onStopSignals(() => void scanner.stop(), log);
  await scanner.done;
  return 0;
});
