import { fleetEnvironment } from '../../adapters/environment.ts';
import { startLocalFleet, type LocalFleet, type LocalFleetOptions } from '../../deploy/local/fleet.ts';
import { createLogger } from '../../adapters/logger.ts';

/** Starts a whole real fleet for one test file; stop it in afterAll. */
export function startTestFleet(opts: LocalFleetOptions = {}): Promise<LocalFleet> {
  return startLocalFleet(opts, createLogger('test-fleet', { pretty: false, level: fleetEnvironment().FLEET_LOG_LEVEL ?? 'warn' }));
}

export const fixture = (name: string): string => new URL(`../fixtures/apps/${name}`, import.meta.url).pathname;

/** The environment a user of a remote fleet sets for the `fleet` CLI: S3 via FLEET_S3_* and the AWS chain. */
export function cliEnv(fleet: LocalFleet): Record<string, string> {
  const s3 = fleet.s3.options;
  return {
    FLEET_NATS_URL: fleet.nats.url,
    FLEET_NATS_NKEY: fleet.client.credentials.seedFile,
    FLEET_NATS_USER: fleet.client.credentials.user,
    FLEET_S3_BUCKET: s3.bucket,
    FLEET_S3_ENDPOINT: s3.endpoint,
    FLEET_S3_PATH_STYLE: '1',
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey,
  };
}

/** `fetch` to the coordinator's HTTP API as the platform admin (every route but /healthz needs a token). */
export function adminFetch(fleet: LocalFleet, url: string, init: RequestInit = {}): Promise<Response> {
  return fetch(url, { ...init, headers: { ...(init.headers as Record<string, string> | undefined), authorization: `Bearer ${fleet.adminToken}` } });
}

/** The `fleet` command as a user runs it. */
export const FLEET_BIN = new URL('../../bin/fleet.js', import.meta.url).pathname;

/** Every archived attempt of a build's log, as stored in S3 (gunzipped JSON lines). */
export async function archivedLog(fleet: LocalFleet, id: string): Promise<string> {
  const { createGunzip } = await import('node:zlib');
  let text = '';
  for (const { key } of await fleet.client.s3.list(`logs/${id}/`)) {
    const body = await fleet.client.s3.get(key);
    if (body === null) continue;
    for await (const chunk of body.pipe(createGunzip())) text += (chunk as Buffer).toString();
  }
  return text;
}
