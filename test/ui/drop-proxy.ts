import { connect, createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/** One connection through the proxy: what the browser sent and what came back (the first 64 KiB of each). */
export interface Passed {
  request: string;
  response: string;
}

export interface DropProxy {
  url: string;
  /** every connection opened while up, oldest first */
  connections: Passed[];
  /** Cuts every open connection and refuses new ones, as a restarted proxy or a network drop would. */
  down(): void;
  up(): void;
  close(): Promise<void>;
}

const KEEP = 64 * 1024;

/**
 * A TCP proxy in front of the coordinator's HTTP port, so a browser test can drop the console's
 * connections mid-stream (and see what it sends when it reconnects) without touching the fleet.
 */
export async function dropProxy(target: string): Promise<DropProxy> {
  const { hostname, port } = new URL(target);
  const open = new Set<Socket>();
  const connections: Passed[] = [];
  let isUp = true;
  const server = createServer((client) => {
    if (!isUp) return void client.destroy();
    const passed: Passed = { request: '', response: '' };
    connections.push(passed);
    const upstream = connect(Number(port), hostname);
    open.add(client).add(upstream);
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on('data', (b: Buffer) => {
      if (passed.request.length < KEEP) passed.request += b.toString('latin1');
      upstream.write(b);
    });
    upstream.on('data', (b: Buffer) => {
      if (passed.response.length < KEEP) passed.response += b.toString('latin1');
      client.write(b);
    });
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections,
    down: () => {
      isUp = false;
      for (const s of open) s.destroy();
      open.clear();
    },
    up: () => {
      isUp = true;
    },
    close: () => {
      for (const s of open) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
