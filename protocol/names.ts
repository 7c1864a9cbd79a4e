/**
 * Subjects, streams, buckets and consumers of protocol v1. Both sides import these; a breaking
 * change to any message gets a new version here rather than an edit in place.
 */
export const PROTOCOL_VERSION = 'v1' as const;

const root = `fleet.${PROTOCOL_VERSION}`;
const JOBS_STREAM = 'FLEET_JOBS_V1';

export const subjects = {
  /** request-reply: submit a build request */
  submit: `${root}.api.submit`,
  /** request-reply: read a build's record */
  status: `${root}.api.status`,
  /** request-reply: list live workers */
  workers: `${root}.api.workers`,
  /** request-reply: cancel a build */
  cancel: `${root}.api.cancel`,
  /** request-reply: a worker claims a delivery of a job (an attempt) */
  claim: `${root}.api.claim`,
  /** work queue: one subject per worker pool */
  jobs: (pool: string) => `${root}.jobs.${pool}`,
  jobsWildcard: `${root}.jobs.>`,
  /** a build's builder output, one message per line */
  log: (buildId: string) => `${root}.build.${buildId}.log`,
  /** a worker's claim about a build (pushed, failed); the coordinator checks it */
  report: (buildId: string) => `${root}.build.${buildId}.report`,
  reportWildcard: `${root}.build.*.report`,
  /** the authoritative lifecycle events, published by the coordinator */
  event: (buildId: string) => `${root}.build.${buildId}.event`,
  buildsWildcard: `${root}.build.>`,
  /** jobs parked for a person after exhausting their deliveries */
  dlq: (buildId: string) => `${root}.dlq.${buildId}`,
  dlqWildcard: `${root}.dlq.>`,
  /** request-reply: dead letters (list, retry, drop) */
  dlqApi: `${root}.api.dlq`,
  /** verified digests, for scanners */
  scanRequest: `${root}.scan.request`,
  /** JetStream's word that a job used up its deliveries (kept in a stream: see streams.advisories) */
  maxDeliveriesAdvisory: `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${JOBS_STREAM}.*`,
} as const;

export const streams = {
  jobs: JOBS_STREAM,
  builds: 'FLEET_BUILDS_V1',
  scan: 'FLEET_SCAN_V1',
  dlq: 'FLEET_DLQ_V1',
  /** JetStream advisories the coordinator must not miss while none runs (max deliveries) */
  advisories: 'FLEET_ADVISORIES_V1',
} as const;

export const buckets = {
  builds: 'fleet_builds_v1',
  /** live workers; an entry expires when its worker stops announcing itself */
  workers: 'fleet_workers_v1',
  tokens: 'fleet_tokens_v1',
} as const;

export const consumers = {
  pool: (pool: string) => `pool_${pool}`,
  reports: 'coordinator_reports',
  deadLetters: 'coordinator_dead_letters',
} as const;

/** Queue group shared by coordinator replicas for the request-reply API. */
export const COORDINATOR_QUEUE = 'fleet-coordinator';
