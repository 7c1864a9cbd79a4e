import { z } from 'zod';

/**
 * What KEDA's `nats-jetstream` scaler computes from nats-server's `/jsz`, written down so a test
 * can check the manifests' triggers against a real server's numbers instead of trusting them.
 * Mirrors kedacore/keda pkg/scalers/nats_jetstream_scaler.go (v2.x): it GETs
 * `/jsz?acc=ACCOUNT&consumers=true&config=true`, takes the consumer's `num_pending +
 * num_ack_pending` (and, oddly, the stream's `last_seq` when the consumer is missing), and feeds
 * that to the HPA as an AverageValue metric against `lagThreshold`.
 */
const ConsumerDetail = z.object({
  name: z.string(),
  num_pending: z.number().int().nonnegative(),
  num_ack_pending: z.number().int().nonnegative(),
  cluster: z.object({ leader: z.string().optional() }).optional(),
});
const StreamDetail = z.object({
  name: z.string(),
  state: z.object({ last_seq: z.number().int().nonnegative() }),
  consumer_detail: z.array(ConsumerDetail).optional(),
});
export const JszResponse = z.object({
  account_details: z.array(z.object({ name: z.string(), stream_detail: z.array(StreamDetail).optional() })).optional(),
});
export type JszResponse = z.infer<typeof JszResponse>;

export interface NatsJetStreamTrigger {
  account: string;
  stream: string;
  consumer: string;
  lagThreshold: number;
  activationLagThreshold: number;
}

export function jszUrl(monitoringUrl: string, account: string): string {
  return `${monitoringUrl}/jsz?acc=${encodeURIComponent(account)}&consumers=true&config=true`;
}

/** The lag KEDA reads; undefined when the stream itself is missing (KEDA reports an error then). */
export function kedaLag(jsz: JszResponse, trigger: Pick<NatsJetStreamTrigger, 'account' | 'stream' | 'consumer'>): number | undefined {
  const stream = jsz.account_details?.find((a) => a.name === trigger.account)?.stream_detail?.find((s) => s.name === trigger.stream);
  if (stream === undefined) return undefined;
  const consumer = stream.consumer_detail?.find((c) => c.name === trigger.consumer);
  return consumer === undefined ? stream.state.last_seq : consumer.num_pending + consumer.num_ack_pending;
}

/**
 * Replicas a ScaledObject asks for: inactive (lag ≤ activation) → minReplicaCount, else the HPA's
 * AverageValue rule ceil(lag / lagThreshold), clamped to [max(min, 1), max]. The HPA's 10%
 * tolerance and stabilization windows only delay this number; they do not change it.
 */
export function scaledObjectReplicas(lag: number, t: Pick<NatsJetStreamTrigger, 'lagThreshold' | 'activationLagThreshold'>, min: number, max: number): number {
  if (lag <= t.activationLagThreshold) return min;
  return Math.min(max, Math.max(min, 1, Math.ceil(lag / t.lagThreshold)));
}

/**
 * Jobs a ScaledJob starts this poll under `scalingStrategy: default`: min(ceil(lag/target), max)
 * minus the jobs already running. Right for this fleet because the lag counts in-flight builds
 * (num_ack_pending), which are exactly the running one-build pods; `accurate` assumes a queue
 * length without the in-flight messages and would start a second pod per running build.
 */
export function scaledJobsToStart(lag: number, lagThreshold: number, max: number, running: number): number {
  const wanted = Math.min(max, Math.ceil(lag / lagThreshold));
  return Math.max(0, wanted - running);
}
