/**
 * A load generator's HTTP/1.1 client: one keep-alive connection, one request at a time, requests
 * written as one buffer and answers read by Content-Length, nothing else. node:http's client
 * (request/response objects, header parsing, the agent's pool) cost the intake bench's load thread
 * about as much CPU per request as the coordinator spends answering it, on the same two cores: the
 * bench measured its own client. This is what a load tool such as wrk does, and only what the
 * coordinator's answers need (it always sends Content-Length; no chunked bodies).
 */
import { connect, type Socket } from 'node:net';

export interface RawAnswer {
  status: number;
  body: string;
}

export class RawHttpConnection {
  private buffered: Buffer = Buffer.alloc(0);
  private waiting: { resolve: (a: RawAnswer) => void; reject: (e: Error) => void } | null = null;
  private closed: Error | null = null;

  private constructor(
    private readonly socket: Socket,
    private readonly host: string,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
      this.parse();
    });
    const end = (e: Error): void => {
      this.closed ??= e;
      this.waiting?.reject(e);
      this.waiting = null;
    };
    socket.on('error', end);
    socket.on('close', () => end(new Error('connection closed')));
  }

  static open(url: URL): Promise<RawHttpConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: url.hostname, port: Number(url.port) }, () => {
        socket.off('error', reject);
        resolve(new RawHttpConnection(socket, url.host));
      });
      socket.once('error', reject);
    });
  }

  /** One request; the next only after this one is answered. */
  request(method: string, path: string, headers: Record<string, string>, body: string): Promise<RawAnswer> {
    if (this.closed !== null) return Promise.reject(this.closed);
    if (this.waiting !== null) return Promise.reject(new Error('one request at a time'));
    const payload = Buffer.from(body);
    let head = `${method} ${path} HTTP/1.1\r\nhost: ${this.host}\r\ncontent-length: ${payload.length}\r\n`;
    for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.socket.write(Buffer.concat([Buffer.from(`${head}\r\n`), payload]));
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private parse(): void {
    const headEnd = this.buffered.indexOf('\r\n\r\n');
    if (headEnd < 0) return;
    const head = this.buffered.subarray(0, headEnd).toString('latin1');
    const status = Number(head.slice(9, 12));
    const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? NaN);
    if (!Number.isFinite(length)) {
      this.fail(new Error(`an answer without Content-Length: ${head.slice(0, 200)}`));
      return;
    }
    const end = headEnd + 4 + length;
    if (this.buffered.length < end) return;
    const body = this.buffered.subarray(headEnd + 4, end).toString('utf8');
    this.buffered = this.buffered.subarray(end);
    const waiting = this.waiting;
    this.waiting = null;
    waiting?.resolve({ status, body });
  }

  private fail(e: Error): void {
    this.waiting?.reject(e);
    this.waiting = null;
    this.socket.destroy(e);
  }
}
