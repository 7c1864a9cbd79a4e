import { startLocalFleet, type LocalFleet, type LocalFleetOptions } from '../../deploy/local/fleet.ts';
import { createLogger } from '../../runtime/logger.ts';

/** Starts a whole real fleet for one test file; stop it in afterAll. */
export function startTestFleet(opts: LocalFleetOptions = {}): Promise<LocalFleet> {
  return startLocalFleet(opts, createLogger('test-fleet', { pretty: false, level: process.env.FLEET_LOG_LEVEL ?? 'warn' }));
}

export const fixture = (name: string): string => new URL(`../fixtures/apps/${name}`, import.meta.url).pathname;
