import { AckPolicy, DeliverPolicy, RetentionPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { nanos, type NatsConnection } from '@nats-io/nats-core';
import { buckets, consumers, streams, subjects } from '../protocol/index.ts';
import type { CoordinatorConfig } from './config.ts';

export interface Topology {
  builds: KV;
  workers: KV;
}

/** Streams, consumers and buckets the fleet runs on. Idempotent: every coordinator start runs it. */
export async function ensureTopology(nc: NatsConnection, jsm: JetStreamManager, config: CoordinatorConfig): Promise<Topology> {
  await upsertStream(jsm, {
    name: streams.jobs,
    subjects: [subjects.jobsWildcard],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    duplicate_window: nanos(10 * 60 * 1000),
  });
  await upsertStream(jsm, {
    name: streams.builds,
    subjects: [subjects.buildsWildcard],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    max_age: nanos(config.buildsMaxAgeMs),
    duplicate_window: nanos(2 * 60 * 1000),
  });
  await upsertStream(jsm, {
    name: streams.scan,
    subjects: [subjects.scanRequest],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    max_age: nanos(config.buildsMaxAgeMs),
  });
  // Scan jobs outlive no gate: one no scanner took within the hour has long failed its build.
  await upsertStream(jsm, {
    name: streams.scanJobs,
    subjects: [subjects.scanJobs],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    max_age: nanos(3600_000),
    duplicate_window: nanos(2 * 60 * 1000),
  });
  // The audit trail outlives the builds it speaks of: a year by default.
  await upsertStream(jsm, {
    name: streams.audit,
    subjects: [subjects.auditWildcard],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    max_age: nanos(config.auditMaxAgeMs),
  });
  await upsertStream(jsm, {
    name: streams.dlq,
    subjects: [subjects.dlqWildcard],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    max_msgs_per_subject: 1,
  });
  // Advisories are plain NATS messages: one sent while no coordinator listens would be lost, and
  // its job would sit in the work queue with its build `running` forever. A stream keeps them.
  await upsertStream(jsm, {
    name: streams.advisories,
    subjects: [subjects.maxDeliveriesAdvisory],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    max_age: nanos(config.buildsMaxAgeMs),
  });
  for (const pool of config.pools) {
    await upsertConsumer(jsm, streams.jobs, {
      durable_name: consumers.pool(pool),
      filter_subjects: [subjects.poolJobs(pool), subjects.jobs(pool)],
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(config.jobAckWaitMs),
      max_deliver: config.maxDeliver,
      deliver_policy: DeliverPolicy.All,
    });
  }
  await upsertConsumer(jsm, streams.builds, {
    durable_name: consumers.reports,
    filter_subject: subjects.reportWildcard,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(60_000),
    deliver_policy: DeliverPolicy.All,
  });
  await upsertConsumer(jsm, streams.scanJobs, {
    durable_name: consumers.scanner,
    ack_policy: AckPolicy.Explicit,
    // a scanner marks the job in progress while it scans; silence this long means it died
    ack_wait: nanos(config.scan?.ackWaitMs ?? 60_000),
    max_deliver: 3,
    deliver_policy: DeliverPolicy.All,
  });
  await upsertConsumer(jsm, streams.advisories, {
    durable_name: consumers.deadLetters,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(60_000),
    deliver_policy: DeliverPolicy.All,
  });
  const builds = await new Kvm(nc).create(buckets.builds, { history: 5, storage: StorageType.File });
  // File storage although entries live seconds: a memory bucket vanishes with a server restart,
  // and every worker's announcements would fail until a coordinator recreated it.
  const workers = await new Kvm(nc).create(buckets.workers, { history: 1, storage: StorageType.File, ttl: config.workerTtlMs });
  return { builds, workers };
}

type StreamConfig = Parameters<JetStreamManager['streams']['add']>[0];
type ConsumerConfig = Parameters<JetStreamManager['consumers']['add']>[1];

async function upsertStream(jsm: JetStreamManager, cfg: StreamConfig & { name: string }): Promise<void> {
  try {
    await jsm.streams.info(cfg.name);
    await jsm.streams.update(cfg.name, cfg);
  } catch (e) {
    if (!isNotFound(e)) throw e;
    await jsm.streams.add(cfg);
  }
}

async function upsertConsumer(jsm: JetStreamManager, stream: string, cfg: ConsumerConfig & { durable_name: string }): Promise<void> {
  try {
    await jsm.consumers.info(stream, cfg.durable_name);
    await jsm.consumers.update(stream, cfg.durable_name, cfg);
  } catch (e) {
    if (!isNotFound(e)) throw e;
    await jsm.consumers.add(stream, cfg);
  }
}

function isNotFound(e: unknown): boolean {
  return e instanceof Error && /not found/i.test(e.message);
}
