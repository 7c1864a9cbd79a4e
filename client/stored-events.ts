import { jetstream, jetstreamManager, DeliverPolicy } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { AuditEntry, BuildEvent, decodeWith, ErrorCode, ScanRequest, streams, subjects } from '../protocol/index.ts';

/** Every event stored for a build, oldest first (reads the stream; does not wait). */
export async function storedEvents(nc: NatsConnection, buildId: string): Promise<BuildEvent[]> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(streams.builds, { subjects_filter: subjects.event(buildId) });
  const count = info.state.subjects?.[subjects.event(buildId)] ?? 0;
  if (count === 0) return [];
  const consumer = await jetstream(nc).consumers.get(streams.builds, {
    filter_subjects: [subjects.event(buildId)],
    deliver_policy: DeliverPolicy.All,
  });
  const out: BuildEvent[] = [];
  const batch = await consumer.fetch({ max_messages: count, expires: 2_000 });
  for await (const m of batch) {
    out.push(decodeWith(BuildEvent, m.data, 'event', ErrorCode.E_INTERNAL));
    if (out.length === count) break;
  }
  return out;
}

export async function pendingJobs(nc: NatsConnection, pool?: string): Promise<number> {
  const jsm = await jetstreamManager(nc);
  if (pool === undefined) return (await jsm.streams.info(streams.jobs)).state.messages;
  // one subject per queued build: count them all
  const info = await jsm.streams.info(streams.jobs, { subjects_filter: subjects.poolJobs(pool) });
  return Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
}

/** Scan requests published so far (the stream keeps them for scanners that come later). */
export async function storedScanRequests(nc: NatsConnection): Promise<ScanRequest[]> {
  const jsm = await jetstreamManager(nc);
  const count = (await jsm.streams.info(streams.scan)).state.messages;
  if (count === 0) return [];
  const consumer = await jetstream(nc).consumers.get(streams.scan, { deliver_policy: DeliverPolicy.All });
  const out: ScanRequest[] = [];
  for await (const m of await consumer.fetch({ max_messages: count, expires: 2_000 })) {
    out.push(decodeWith(ScanRequest, m.data, 'scan request', ErrorCode.E_INTERNAL));
    if (out.length === count) break;
  }
  return out;
}

/** The audit trail, oldest first: every tenant's, or one tenant's (admins only: the server lets no one else read it). */
export async function auditTrail(nc: NatsConnection, tenant?: string): Promise<AuditEntry[]> {
  const subject = tenant === undefined ? subjects.auditWildcard : subjects.audit(tenant);
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(streams.audit, { subjects_filter: subject });
  const count = Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
  if (count === 0) return [];
  const consumer = await jetstream(nc).consumers.get(streams.audit, { filter_subjects: [subject], deliver_policy: DeliverPolicy.All });
  const out: AuditEntry[] = [];
  for await (const m of await consumer.fetch({ max_messages: count, expires: 2_000 })) {
    out.push(decodeWith(AuditEntry, m.data, 'audit entry', ErrorCode.E_INTERNAL));
    if (out.length === count) break;
  }
  return out;
}
