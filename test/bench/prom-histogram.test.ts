import { describe, expect, it } from 'vitest';
import { bucketQuantile, histogramBuckets } from '../../bench/prom-histogram.ts';

const scrape = (counts: number[]): string =>
  [
    '# HELP fleet_nats_api_answer_seconds answer time',
    '# TYPE fleet_nats_api_answer_seconds histogram',
    ...['0.005', '0.025', '0.1', '+Inf'].map((le, i) => `fleet_nats_api_answer_seconds_bucket{le="${le}",api="claim"} ${counts[i] ?? 0}`),
    ...['0.005', '0.025', '0.1', '+Inf'].map((le) => `fleet_nats_api_answer_seconds_bucket{le="${le}",api="submit"} 1000`),
    `fleet_nats_api_answer_seconds_count{api="claim"} ${counts[3] ?? 0}`,
  ].join('\n');

describe('a histogram read from a scrape', () => {
  it("takes one series' buckets and the quantile of what was observed between two scrapes", () => {
    const before = histogramBuckets(scrape([10, 10, 10, 10]), 'fleet_nats_api_answer_seconds', ['api="claim"']);
    expect([...before.entries()]).toEqual([[0.005, 10], [0.025, 10], [0.1, 10], [Infinity, 10]]);
    // between the scrapes: 90 under 5 ms, 9 under 25 ms, 1 under 100 ms
    const after = histogramBuckets(scrape([100, 109, 110, 110]), 'fleet_nats_api_answer_seconds', ['api="claim"']);
    expect(bucketQuantile(before, after, 0.5)).toBe(0.005);
    expect(bucketQuantile(before, after, 0.99)).toBe(0.025);
    expect(bucketQuantile(before, after, 1)).toBe(0.1);
    // an empty `before` counts every observation since the start
    expect(bucketQuantile(new Map(), after, 0.9)).toBe(0.005);
    expect(bucketQuantile(after, after, 0.99)).toBeNaN();
  });
});
