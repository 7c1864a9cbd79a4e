import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { createGzip, type Gzip } from 'node:zlib';
import type { JetStreamClient, PubAck } from '@nats-io/jetstream';
import { encode, subjects, type LogBatch, type LogLine } from '../protocol/index.ts';
import { logKey, type S3Store } from '../adapters/s3-store.ts';
import type { AttemptLog } from './ports.ts';
import type { LogMasker } from './log-masker.ts';

/** unacknowledged batches at once */
const MAX_IN_FLIGHT = 64;

type BatchLine = LogBatch['lines'][number];
/** a batch goes out when it has this many lines or bytes, or after BATCH_MS */
const BATCH_LINES = 200;
const BATCH_BYTES = 64 * 1024;
const BATCH_MS = 5;
const TAIL_LINES = 40;

export interface LogLimits {
  /** lines and bytes published live per attempt; the archive keeps everything */
  maxLiveLines: number;
  maxLiveBytes: number;
  /** longer output without a newline is split into pieces of this many characters */
  maxLineChars: number;
}

/**
 * One attempt's log: every (already masked) line goes live to the build's log subject with a
 * bounded number of unacknowledged publishes, and into a gzip file that is archived to S3 when
 * the attempt ends, whatever the ending. Memory stays bounded whatever the build prints.
 */
export class BuildLog implements AttemptLog {
  private n = 0;
  private liveBytes = 0;
  private truncated = 0;
  private readonly inFlight = new Set<Promise<PubAck>>();
  private readonly tailLines: string[] = [];
  /** live batches NATS did not take (e.g. during a server restart); the archive still has them */
  private lostBatches = 0;
  private batch: BatchLine[] = [];
  private batchBytes = 0;
  private batchTimer: NodeJS.Timeout | null = null;
  private readonly gzip: Gzip;
  private readonly file: WriteStream;

  constructor(
    private readonly js: JetStreamClient,
    private readonly s3: S3Store,
    private readonly buildId: string,
    /** the build's pool: the worker's NATS user may publish log lines only under it */
    private readonly pool: string,
    readonly attempt: number,
    private readonly archiveFile: string,
    readonly masker: LogMasker,
    private readonly limits: LogLimits,
  ) {
    this.gzip = createGzip();
    this.file = createWriteStream(archiveFile, { mode: 0o600 });
    this.gzip.pipe(this.file);
  }

  get maxLine(): number {
    return this.limits.maxLineChars;
  }

  async line(stream: LogLine['stream'], text: string): Promise<void> {
    const line: BatchLine = { n: ++this.n, stream, at: new Date().toISOString(), text };
    const entry: LogLine = { buildId: this.buildId, attempt: this.attempt, ...line };
    const json = JSON.stringify(entry);
    if (!this.gzip.write(`${json}\n`)) await once(this.gzip, 'drain');
    this.tailLines.push(text);
    if (this.tailLines.length > TAIL_LINES) this.tailLines.shift();
    if (this.n > this.limits.maxLiveLines || this.liveBytes + json.length > this.limits.maxLiveBytes) {
      this.truncated += 1;
      if (this.truncated === 1) {
        await this.publish({ ...line, stream: 'system', text: `[live log truncated after ${this.n - 1} lines / ${this.liveBytes} bytes; the archived log has everything]` });
      }
      return;
    }
    this.liveBytes += json.length;
    await this.publish(line);
  }

  private async publish(line: BatchLine): Promise<void> {
    this.batch.push(line);
    this.batchBytes += line.text.length + 64;
    if (this.batch.length >= BATCH_LINES || this.batchBytes >= BATCH_BYTES) {
      await this.sendBatch();
    } else {
      this.batchTimer ??= setTimeout(() => void this.sendBatch(), BATCH_MS);
    }
  }

  private async sendBatch(): Promise<void> {
    if (this.batchTimer !== null) clearTimeout(this.batchTimer);
    this.batchTimer = null;
    if (this.batch.length === 0) return;
    const message: LogBatch = { buildId: this.buildId, attempt: this.attempt, lines: this.batch };
    this.batch = [];
    this.batchBytes = 0;
    const p = this.js.publish(subjects.log(this.buildId, this.pool), encode(message));
    this.inFlight.add(p);
    p.catch(() => {
      this.lostBatches += 1;
    }).finally(() => this.inFlight.delete(p));
    if (this.inFlight.size >= MAX_IN_FLIGHT) await Promise.race(this.inFlight).catch(() => undefined);
  }

  /**
   * Waits until every live batch is stored or refused. Live logs are best effort: a NATS outage
   * must not fail a build whose archive keeps every line.
   */
  async flush(): Promise<void> {
    if (this.truncated > 0) {
      await this.publish({ n: this.n + 1, stream: 'system', at: new Date().toISOString(), text: `[${this.truncated} lines not shown live; see the archived log]` });
    }
    await this.sendBatch();
    await Promise.allSettled([...this.inFlight]);
    if (this.lostBatches > 0) {
      const lost = this.lostBatches;
      this.lostBatches = 0;
      await this.publish({ n: this.n + 1, stream: 'system', at: new Date().toISOString(), text: `[${lost} live log batch(es) lost to a NATS outage; the archived log has every line]` });
      await Promise.allSettled([...this.inFlight]);
    }
  }

  /**
   * Ends the attempt's log: flushes what is live, closes the archive file and stores it in S3
   * under logs/<buildId>/attempt-NNN.log.gz. Idempotent: the first call does the work, later
   * calls share its outcome, so every ending archives exactly once.
   */
  close(): Promise<void> {
    this.archived ??= (async () => {
      await this.flush();
      this.gzip.end();
      await once(this.file, 'close');
      await this.s3.putFileOnce(logKey(this.buildId, this.attempt), this.archiveFile);
    })();
    return this.archived;
  }

  private archived: Promise<void> | null = null;

  tail(): string[] {
    return [...this.tailLines];
  }
}
