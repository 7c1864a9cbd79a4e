import { readFile } from 'node:fs/promises';
import { nkeyAuthenticator } from '@nats-io/nats-core';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ErrorCode, FleetError } from '../protocol/index.ts';
import { z } from 'zod';
import type { Logger } from './logger.ts';

export type { NatsConnection };

/**
 * Who a component is on NATS: an nkey seed file (never passed in argv or env) and the user it
 * belongs to, whose inbox prefix the server's permissions allow.
 */
export const NatsCredentials = z.strictObject({
  /** file holding the user's nkey seed (`SU…`), readable only by the component */
  seedFile: z.string().refine((p) => p.startsWith('/'), 'must be an absolute path'),
  /** the permission set's user name (see protocol/nats-permissions.ts); replies come to `_INBOX_<user>` */
  user: z.string().regex(/^[a-z][a-z0-9_-]{0,80}$/),
  /** CA bundle the server's TLS certificate must chain to; required for a server not on loopback */
  tlsCaFile: z.string().refine((p) => p.startsWith('/'), 'must be an absolute path').optional(),
});
export type NatsCredentials = z.infer<typeof NatsCredentials>;

/** Connects authenticated, with reconnect forever; a fleet component outlives any one nats-server restart. */
export async function connectNats(servers: string, name: string, credentials: NatsCredentials, log: Logger): Promise<NatsConnection> {
  requireTlsOffLoopback(servers, credentials);
  const seed = await readFile(credentials.seedFile, 'utf8').catch((e: unknown) => {
    throw new FleetError(ErrorCode.E_UNAVAILABLE, `cannot read the NATS credentials ${credentials.seedFile}: ${e instanceof Error ? e.message : String(e)}`);
  });
  const nc = await connect({
    servers: servers.split(','),
    name,
    authenticator: nkeyAuthenticator(new TextEncoder().encode(seed.trim())),
    inboxPrefix: `_INBOX_${credentials.user}`,
    ...(credentials.tlsCaFile === undefined ? {} : { tls: { caFile: credentials.tlsCaFile } }),
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    waitOnFirstConnect: true,
    // nats.js otherwise builds an Error (a stack trace) per request to decorate a timeout that
    // rarely comes: 2-3% of the coordinator's thread under intake load. Our errors carry context.
    noAsyncTraces: true,
  });
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' || s.type === 'reconnect' || s.type === 'error') {
        log.warn({ nats: s.type, ...('error' in s ? { err: s.error } : {}) }, 'nats connection %s', s.type);
      }
    }
  })();
  return nc;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/;

/**
 * Seeds and everything the fleet says travel over this connection: off loopback they must be
 * encrypted and the server proven, so a server elsewhere without a CA to check it by is refused.
 */
export function requireTlsOffLoopback(servers: string, credentials: Pick<NatsCredentials, 'tlsCaFile'>): void {
  if (credentials.tlsCaFile !== undefined) return;
  for (const server of servers.split(',')) {
    const host = new URL(server.includes('://') ? server : `nats://${server}`).hostname;
    if (!LOOPBACK.test(host)) {
      throw new FleetError(ErrorCode.E_INVALID_REQUEST, `NATS server ${host} is not on loopback: give its CA (tlsCaFile) so the connection is TLS and the server verified`);
    }
  }
}
