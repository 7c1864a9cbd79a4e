import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * Our own logs (never builder output, which is data). JSON by default; pretty when a person is
 * watching a terminal. FLEET_LOG_LEVEL sets the level.
 */
export function createLogger(name: string, opts: { pretty?: boolean; level?: string } = {}): Logger {
  const level = opts.level ?? process.env.FLEET_LOG_LEVEL ?? 'info';
  const pretty = opts.pretty ?? (process.stderr.isTTY === true && process.env.FLEET_LOG_JSON === undefined);
  if (pretty) {
    return pino({
      name,
      level,
      transport: { target: 'pino-pretty', options: { destination: 2, ignore: 'pid,hostname' } },
    });
  }
  return pino({ name, level }, pino.destination(2));
}
