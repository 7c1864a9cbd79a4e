import type { JetStreamClient, PubAck } from '@nats-io/jetstream';
import { encode, subjects, type LogLine } from '../protocol/index.ts';

const MAX_IN_FLIGHT = 256;
const TAIL_LINES = 40;

/**
 * Streams builder output to the build's log subject as it comes, one message per line, with a
 * bounded number of unacknowledged publishes; keeps the last lines for failure reports.
 */
export class LogPublisher {
  private n = 0;
  private readonly inFlight = new Set<Promise<PubAck>>();
  private readonly tailLines: string[] = [];
  private failure: unknown = null;

  constructor(
    private readonly js: JetStreamClient,
    private readonly buildId: string,
    readonly attempt: number,
  ) {}

  async line(stream: LogLine['stream'], text: string): Promise<void> {
    const entry: LogLine = { buildId: this.buildId, attempt: this.attempt, n: ++this.n, stream, at: new Date().toISOString(), text };
    this.tailLines.push(text);
    if (this.tailLines.length > TAIL_LINES) this.tailLines.shift();
    const p = this.js.publish(subjects.log(this.buildId), encode(entry));
    this.inFlight.add(p);
    p.catch((e: unknown) => {
      this.failure ??= e;
    }).finally(() => this.inFlight.delete(p));
    if (this.inFlight.size >= MAX_IN_FLIGHT) await Promise.race(this.inFlight).catch(() => undefined);
  }

  /** Waits until every line is stored; throws if any could not be. */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
    if (this.failure !== null) throw this.failure;
  }

  tail(): string[] {
    return [...this.tailLines];
  }
}
