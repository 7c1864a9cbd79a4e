/**
 * Subjects, streams, buckets and consumers of protocol v1. Both sides import these; a breaking
 * change to any message gets a new version here rather than an edit in place.
 */
export const PROTOCOL_VERSION = 'v1' as const;

const root = `fleet.${PROTOCOL_VERSION}`;
const JOBS_STREAM = 'FLEET_JOBS_V1';

export const subjects = {
  /**
   * request-reply: submit a build request for a tenant. The tenant is in the subject so the
   * server's permissions say who asks (a tenant's user may publish only its own); `platform` is
   * the platform's admins.
   */
  submit: (tenant: string) => `${root}.api.submit.${tenant}`,
  /** request-reply: read a build's record (the tenant's own builds only) */
  status: (tenant: string) => `${root}.api.status.${tenant}`,
  /** request-reply: cancel a build (the tenant's own builds only) */
  cancel: (tenant: string) => `${root}.api.cancel.${tenant}`,
  /** request-reply (admin): list live workers */
  workers: `${root}.api.workers`,
  /** request-reply (admin): API tokens (create, list, revoke) */
  tokens: `${root}.api.tokens`,
  /** request-reply: a worker of `pool` claims a delivery of a job (an attempt); only that pool's user may send it */
  claim: (pool: string) => `${root}.api.claim.${pool}`,
  /** the token of a per-tenant or per-pool API subject that names who asks */
  callerOf: (subject: string) => subject.slice(subject.lastIndexOf('.') + 1),
  /**
   * work queue: one subject per queued build, under its pool, so a build cancelled or expired while
   * queued can be taken out of the queue (a purge by subject) instead of counting as lag until a
   * worker pulls it; KEDA's scaler reads that lag
   */
  job: (pool: string, buildId: string) => `${root}.jobs.${pool}.${buildId}`,
  /** every queued build of a pool (a consumer filter) */
  poolJobs: (pool: string) => `${root}.jobs.${pool}.>`,
  /** a pool's jobs as coordinators before per-build subjects published them; still consumed */
  jobs: (pool: string) => `${root}.jobs.${pool}`,
  jobsWildcard: `${root}.jobs.>`,
  /** a build's builder output, published by a worker of the build's pool (the last token) */
  log: (buildId: string, pool: string) => `${root}.build.${buildId}.log.${pool}`,
  /** a worker's claim about a build (pushed, failed); the coordinator checks who sends it */
  report: (buildId: string, pool: string) => `${root}.build.${buildId}.report.${pool}`,
  reportWildcard: `${root}.build.*.report.*`,
  /** the authoritative lifecycle events, published by the coordinator */
  event: (buildId: string) => `${root}.build.${buildId}.event`,
  buildsWildcard: `${root}.build.>`,
  /** jobs parked for a person after exhausting their deliveries */
  dlq: (buildId: string) => `${root}.dlq.${buildId}`,
  dlqWildcard: `${root}.dlq.>`,
  /** request-reply: dead letters (list, retry, drop) */
  dlqApi: `${root}.api.dlq`,
  /** the audit trail: one subject per tenant (the platform's own actions under `platform`) */
  audit: (tenant: string) => `${root}.audit.${tenant}`,
  auditWildcard: `${root}.audit.>`,
  /** verified digests, for scanners */
  scanRequest: `${root}.scan.request`,
  /** work queue: a quarantined digest the vulnerabilities gate waits on (the scanner pool consumes it) */
  scanJobs: `${root}.scanner.job`,
  /** a scanner's report on one scan job; the coordinator that asked listens for it */
  scanResult: (scanId: string) => `${root}.scanner.result.${scanId}`,
  scanResultWildcard: `${root}.scanner.result.*`,
  /** a scanner announces a newer vulnerability DB (ScannerDbUpdated); the coordinator rescans released images on it */
  scannerDbUpdated: `${root}.scanner.db-updated`,
  /** durable work queue of notifications to deliver to a tenant's webhook (coordinator/notifications) */
  notifyQueue: (tenant: string) => `${root}.notify.queue.${tenant}`,
  notifyQueueWildcard: `${root}.notify.queue.>`,
  /** one record per webhook delivery attempt, per tenant: what `fleet notifications` lists */
  notifyDelivery: (tenant: string) => `${root}.notify.delivery.${tenant}`,
  notifyDeliveryWildcard: `${root}.notify.delivery.>`,
  /** request-reply (admin): rescan every released image now (coordinator/rescans.ts) */
  rescanApi: `${root}.api.rescan`,
  /** request-reply (admin): rebuild waves (`fleet rebuilds`) */
  rebuildsApi: `${root}.api.rebuilds`,
  /** JetStream's word that a job used up its deliveries (kept in a stream: see streams.advisories) */
  maxDeliveriesAdvisory: `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${JOBS_STREAM}.*`,
} as const;

export const streams = {
  jobs: JOBS_STREAM,
  builds: 'FLEET_BUILDS_V1',
  scan: 'FLEET_SCAN_V1',
  scanJobs: 'FLEET_SCAN_JOBS_V1',
  dlq: 'FLEET_DLQ_V1',
  /** who asked for what, accepted or refused; read by `fleet audit` */
  audit: 'FLEET_AUDIT_V1',
  /** JetStream advisories the coordinator must not miss while none runs (max deliveries) */
  advisories: 'FLEET_ADVISORIES_V1',
  /** notifications waiting for delivery (work queue: survives a coordinator restart) */
  notify: 'FLEET_NOTIFY_V1',
  /** webhook delivery attempts, kept as long as build events */
  notifyDeliveries: 'FLEET_NOTIFY_DELIVERIES_V1',
} as const;

export const buckets = {
  builds: 'fleet_builds_v1',
  /** live workers; an entry expires when its worker stops announcing itself */
  workers: 'fleet_workers_v1',
  tokens: 'fleet_tokens_v1',
  /** dependency index: base name → the latest promoted build of each (repository, tag stream) on it (coordinator/rebuilds) */
  dependents: 'fleet_dependents_v1',
  /** rebuild waves: one per (base, new digest) */
  rebuilds: 'fleet_rebuilds_v1',
  /** the scanner DB build time last seen, and what each released image's last rescan found */
  scanState: 'fleet_scan_state_v1',
} as const;

export const consumers = {
  pool: (pool: string) => `pool_${pool}`,
  reports: 'coordinator_reports',
  deadLetters: 'coordinator_dead_letters',
  /** reads build events: promotions feed the dependency index, rebuilds' endings move their waves */
  rebuilds: 'coordinator_rebuilds',
  scanner: 'scanner',
  /** delivers the notification queue */
  notifier: 'coordinator_notifier',
  /** turns build events (blocked verdicts, vulnerable images) into notifications */
  notifyEvents: 'coordinator_notify_events',
} as const;

/** A worker's key in the workers bucket: under its pool, which its NATS user may write and no other. */
export const workerKey = (pool: string, workerId: string): string => `${pool}.${workerId}`;

/** Queue group shared by coordinator replicas for the request-reply API. */
export const COORDINATOR_QUEUE = 'fleet-coordinator';
