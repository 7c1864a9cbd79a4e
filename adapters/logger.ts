import pino, { type Logger } from 'pino';
import { fleetEnvironment } from './environment.ts';

export type { Logger };

/**
 * Our own logs (never builder output, which is data). JSON by default; pretty when a person is
 * watching a terminal. FLEET_LOG_LEVEL sets the level.
 */
export function createLogger(name: string, opts: { pretty?: boolean; level?: string } = {}): Logger {
  const env = fleetEnvironment();
  const level = opts.level ?? env.FLEET_LOG_LEVEL ?? 'info';
  const pretty = opts.pretty ?? (process.stderr.isTTY === true && env.FLEET_LOG_JSON === undefined);
  if (pretty) {
    return pino({
      name,
      level,
      transport: { target: 'pino-pretty', options: { destination: 2, ignore: 'pid,hostname' } },
    });
  }
  return pino({ name, level }, pino.destination(2));
}
