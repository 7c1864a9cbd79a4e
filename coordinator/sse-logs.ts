import type { ServerResponse } from 'node:http';
import type { JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { ErrorCode, FleetError } from '../protocol/index.ts';
import { readBuildLog } from '../adapters/build-log-reader.ts';
import type { S3Store } from '../adapters/s3-store.ts';
import type { BuildStore } from './build-store.ts';
import type { LogStreamer } from './http-api.ts';
import { toView } from './intake.ts';

/**
 * `GET /v1/builds/:id/logs[?follow=1]` as Server-Sent Events: `log` and `event` messages in
 * order (the same reader as `fleet logs`), then one `end` carrying the build's record.
 */
export function sseLogs(nc: NatsConnection, js: JetStreamClient, s3: S3Store, store: BuildStore): LogStreamer {
  return async (id, res: ServerResponse, follow, signal) => {
    const found = await store.get(id);
    if (found === null) throw new FleetError(ErrorCode.E_NOT_FOUND, `no build with id ${id}`);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    const send = (event: string, data: unknown): void => {
      res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    await readBuildLog(nc, js, s3, { id, pool: found.record.request.pool }, found.record.state.phase, { line: (l) => send('log', l), event: (e) => send('event', e) }, {
      follow,
      signal,
      currentPhase: async () => (await store.get(id))?.record.state.phase ?? found.record.state.phase,
    });
    const final = await store.get(id);
    if (final !== null) send('end', toView(final.record));
    res.end();
  };
}
