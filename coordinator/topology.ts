import { AckPolicy, DeliverPolicy, RetentionPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { nanos, type NatsConnection } from '@nats-io/nats-core';
import { buckets, consumers, streams, subjects } from '../protocol/index.ts';
import type { CoordinatorConfig } from './config.ts';
import { JetStreamResources } from './jetstream-resources.ts';

export interface Topology {
  builds: KV;
  workers: KV;
  /** for the streams and buckets of other parts (notifications, rebuilds, rescans, tokens): the same replicas */
  resources: JetStreamResources;
}

/** Streams, consumers and buckets the fleet runs on. Idempotent: every coordinator start runs it. */
export async function ensureTopology(nc: NatsConnection, jsm: JetStreamManager, config: CoordinatorConfig): Promise<Topology> {
  const js = new JetStreamResources(nc, jsm, config.jetstreamReplicas);
  await js.stream({
    name: streams.jobs,
    subjects: [subjects.jobsWildcard],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    duplicate_window: nanos(10 * 60 * 1000),
  });
  await js.stream({
    name: streams.builds,
    subjects: [subjects.buildsWildcard],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    max_age: nanos(config.buildsMaxAgeMs),
    duplicate_window: nanos(2 * 60 * 1000),
  });
  await js.stream({
    name: streams.scan,
    subjects: [subjects.scanRequest],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    max_age: nanos(config.buildsMaxAgeMs),
  });
  // Scan jobs outlive no gate: one no scanner took within the hour has long failed its build.
  await js.stream({
    name: streams.scanJobs,
    subjects: [subjects.scanJobs],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    max_age: nanos(3600_000),
    duplicate_window: nanos(2 * 60 * 1000),
  });
  // The audit trail outlives the builds it speaks of: a year by default.
  await js.stream({
    name: streams.audit,
    subjects: [subjects.auditWildcard],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    max_age: nanos(config.auditMaxAgeMs),
  });
  await js.stream({
    name: streams.dlq,
    subjects: [subjects.dlqWildcard],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    max_msgs_per_subject: 1,
  });
  // Advisories are plain NATS messages: one sent while no coordinator listens would be lost, and
  // its job would sit in the work queue with its build `running` forever. A stream keeps them.
  await js.stream({
    name: streams.advisories,
    subjects: [subjects.maxDeliveriesAdvisory],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    max_age: nanos(config.buildsMaxAgeMs),
  });
  for (const pool of config.pools) {
    await js.consumer(streams.jobs, {
      durable_name: consumers.pool(pool),
      filter_subjects: [subjects.poolJobs(pool), subjects.jobs(pool)],
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(config.jobAckWaitMs),
      max_deliver: config.maxDeliver,
      deliver_policy: DeliverPolicy.All,
    });
  }
  await js.consumer(streams.builds, {
    durable_name: consumers.reports,
    filter_subject: subjects.reportWildcard,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(60_000),
    deliver_policy: DeliverPolicy.All,
  });
  await js.consumer(streams.scanJobs, {
    durable_name: consumers.scanner,
    ack_policy: AckPolicy.Explicit,
    // a scanner marks the job in progress while it scans; silence this long means it died
    ack_wait: nanos(config.scan?.ackWaitMs ?? 60_000),
    max_deliver: 3,
    deliver_policy: DeliverPolicy.All,
  });
  await js.consumer(streams.advisories, {
    durable_name: consumers.deadLetters,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(60_000),
    deliver_policy: DeliverPolicy.All,
  });
  const builds = await js.bucket(buckets.builds, { history: 5, storage: StorageType.File });
  // File storage although entries live seconds: a memory bucket vanishes with a server restart,
  // and every worker's announcements would fail until a coordinator recreated it.
  const workers = await js.bucket(buckets.workers, { history: 1, storage: StorageType.File, ttl: config.workerTtlMs });
  return { builds, workers, resources: js };
}
