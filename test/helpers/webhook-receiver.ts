import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, verifyNotification } from '../../coordinator/notifications/index.ts';
import { CloudEvent } from '../../protocol/index.ts';
import { eventuallyValue } from './eventually.ts';

export interface ReceivedRequest {
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

export interface WebhookReceiver {
  url: string;
  /** every request, in arrival order, refused ones too */
  received: ReceivedRequest[];
  /** the first validly signed notification (with `secret`) that `match` takes */
  signed(secret: string, match: (event: CloudEvent) => boolean, what: string): Promise<CloudEvent>;
  close(): Promise<void>;
}

/**
 * A webhook receiver as a tenant runs one, on a free loopback port: keeps every request's raw body
 * and headers and answers 204; with `refuseFirst`, answers each delivery's first request 503, so
 * every notification is also a retry.
 */
export async function startWebhookReceiver(opts: { refuseFirst?: boolean } = {}): Promise<WebhookReceiver> {
  const received: ReceivedRequest[] = [];
  const seen = new Set<string>();
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      received.push({ body, headers: req.headers });
      const id = String(req.headers['x-fleet-delivery']);
      res.writeHead(opts.refuseFirst === true && !seen.has(id) ? 503 : 204).end();
      seen.add(id);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/fleet`,
    received,
    signed: (secret, match, what) =>
      eventuallyValue(
        async () => {
          for (const r of received) {
            const event = CloudEvent.parse(JSON.parse(r.body));
            const valid = verifyNotification(secret, r.body, { signature: r.headers[SIGNATURE_HEADER] as string | undefined, timestamp: r.headers[TIMESTAMP_HEADER] as string | undefined });
            if (valid && match(event)) return Promise.resolve(event);
          }
          return Promise.resolve(undefined);
        },
        60_000,
        what,
      ),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
