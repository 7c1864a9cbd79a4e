/**
 * Scanner process entry: `node --import tsx scanner/main.ts --config scanner.json`.
 * Exit codes: 0 stopped, 2 bad configuration, 1 failed to start.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { ErrorCode, isFleetError } from '../protocol/index.ts';
import { createLogger } from '../adapters/logger.ts';
import { startScanner } from './scanner.ts';

const log = createLogger('fleet-scanner');

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { config: { type: 'string' } } });
  if (values.config === undefined) {
    log.error('usage: scanner/main.ts --config <scanner.json>');
    return 2;
  }
  const options: unknown = JSON.parse(await readFile(values.config, 'utf8'));
  const scanner = await startScanner(options as Parameters<typeof startScanner>[0], log);
  const onSignal = (): void => void scanner.stop();
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  await scanner.done;
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    log.fatal({ err: e }, 'scanner failed to start');
    process.exit(isFleetError(e, ErrorCode.E_INVALID_REQUEST) ? 2 : 1);
  },
);
