import { DeliverPolicy, type Consumer, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { z } from 'zod';
import {
  DeadLetter,
  ErrorCode,
  FleetError,
  BuildJob,
  decodeWith,
  encode,
  streams,
  subjects,
} from '../protocol/index.ts';
import type { Logger } from '../adapters/logger.ts';
import { consume } from './consume.ts';
import { PLATFORM_ADMIN } from './tenancy/authorize.ts';
import type { BuildStore } from './build-store.ts';
import type { Intake } from './intake.ts';

/** JetStream tells us when a job used up max_deliver; we park it instead of leaving it stuck. */
const MaxDeliveriesAdvisory = z.object({ stream: z.string(), stream_seq: z.number().int().positive(), deliveries: z.number().int().nonnegative() });
const MAX_DELIVERIES = 200;

/**
 * Dead letters: a job that exhausted its deliveries (a poison job, or one that crashes every
 * worker that touches it) is moved out of the work queue into the DLQ stream with its history,
 * its build fails with E_DEAD_LETTER, and the queue behind it moves on. A person lists, retries
 * (as a new build) or drops it.
 */
export class DeadLetters {
  constructor(
    private readonly jsm: JetStreamManager,
    private readonly js: JetStreamClient,
    private readonly store: BuildStore,
    private readonly intake: Intake,
    private readonly log: Logger,
  ) {}

  /**
   * Parks every job JetStream gave up on, from the advisories stream (so one that came while no
   * coordinator ran is parked by the next); replicas share the durable consumer.
   */
  run(consumer: Consumer, signal: AbortSignal): Promise<void> {
    return consume(
      consumer,
      {
        what: 'max-deliveries advisory',
        decode: (msg) => MaxDeliveriesAdvisory.parse(safeJson(new TextDecoder().decode(msg.data))),
        handle: (advisory) => this.park(advisory.stream_seq, advisory.deliveries),
        log: this.log,
        maxMessages: 16,
        maxDeliveries: MAX_DELIVERIES,
      },
      signal,
    );
  }

  async park(seq: number, deliveries: number): Promise<void> {
    const stored = await this.jsm.streams.getMessage(streams.jobs, { seq });
    if (stored === null) return;
    const raw = new TextDecoder().decode(stored.data);
    const job = BuildJob.safeParse(safeJson(raw));
    const buildId = job.success ? job.data.buildId : `unparseable-${seq}`;
    const found = job.success ? await this.store.get(buildId) : null;
    const s = found?.record.state;
    const lastError =
      s?.phase === 'running'
        ? `its worker was lost on every one of ${deliveries} deliveries (last: ${s.workerId})`
        : s?.phase === 'failed'
          ? s.error.message
          : `not acknowledged after ${deliveries} deliveries`;
    const letter: DeadLetter = { buildId, pool: job.success ? job.data.pool : 'unknown', deliveries, parkedAt: new Date().toISOString(), job: raw, lastError };
    await this.js.publish(subjects.dlq(buildId), encode(letter), { msgID: `dlq.${seq}` });
    await this.jsm.streams.deleteMessage(streams.jobs, seq).catch(() => false);
    if (found !== null && (s?.phase === 'queued' || s?.phase === 'running')) {
      const attempt = s.phase === 'running' ? s.attempt : 0;
      const error = new FleetError(ErrorCode.E_DEAD_LETTER, `parked after ${deliveries} deliveries: ${lastError}; see \`fleet dlq ls\``);
      await this.store
        .transition(buildId, (r) => (r.state.phase === 'queued' || r.state.phase === 'running' ? { phase: 'failed', attempt, error: error.toBody(), finishedAt: new Date().toISOString() } : null))
        .catch((e: unknown) => this.log.warn({ err: e, buildId }, 'could not fail the dead-lettered build'));
    }
    this.log.warn({ buildId, deliveries }, 'job parked in the dead letter queue');
  }

  async list(): Promise<DeadLetter[]> {
    const count = (await this.jsm.streams.info(streams.dlq)).state.messages;
    if (count === 0) return [];
    const consumer = await this.js.consumers.get(streams.dlq, { deliver_policy: DeliverPolicy.All });
    const letters: DeadLetter[] = [];
    for await (const m of await consumer.fetch({ max_messages: count, expires: 2_000 })) {
      letters.push(decodeWith(DeadLetter, m.data, 'dead letter', ErrorCode.E_INTERNAL));
      if (letters.length === count) break;
    }
    return letters;
  }

  /** Submits the parked build's request again under a new id, and removes the letter. */
  async retry(buildId: string): Promise<string> {
    await this.letter(buildId);
    const found = await this.store.get(buildId);
    if (found === null) throw new FleetError(ErrorCode.E_NOT_FOUND, `no build record for ${buildId}; drop the letter instead`);
    const id = `${buildId.slice(0, 100)}-retry-${Date.now().toString(36)}`;
    // The retry belongs to the same tenant; an admin asked for it, so tenancy limits are not re-applied.
    await this.intake.submit({ ...found.record.request, id }, { ...PLATFORM_ADMIN, tenant: found.record.tenant });
    await this.drop(buildId);
    return id;
  }

  async drop(buildId: string): Promise<void> {
    await this.letter(buildId);
    await this.jsm.streams.purge(streams.dlq, { filter: subjects.dlq(buildId) });
  }

  private async letter(buildId: string): Promise<DeadLetter> {
    const letter = (await this.list()).find((l) => l.buildId === buildId);
    if (letter === undefined) throw new FleetError(ErrorCode.E_NOT_FOUND, `no dead letter for ${buildId}`);
    return letter;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
