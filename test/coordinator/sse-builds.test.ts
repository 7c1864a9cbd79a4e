import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { BuildList, BuildListQuery, queryOf } from '../../coordinator/build-list.ts';
import { streamBuildList } from '../../coordinator/sse-builds.ts';
import { PLATFORM_ADMIN, type Caller } from '../../coordinator/tenancy/authorize.ts';
import { BuildListEvent, decodeWith, type BuildRecord, type BuildState } from '../../protocol/index.ts';
import { eventually } from '../helpers/eventually.ts';
import { buildRecord } from './build-records.ts';

/** The live builds list over real HTTP: what each tenant's stream carries, and resuming it. */

const record = (id: string, tenant: string, createdAt: string, state?: BuildState, updatedAt?: string): BuildRecord => buildRecord(id, tenant, `app/${tenant}/web`, createdAt, state, updatedAt);

const CALLERS: Record<string, Caller> = {
  alpha: { subject: 'a', tenant: 'alpha', role: 'reader' },
  beta: { subject: 'b', tenant: 'beta', role: 'reader' },
  admin: PLATFORM_ADMIN,
};

let server: Server | undefined;
const streams: AbortController[] = [];

afterEach(async () => {
  for (const s of streams) s.abort();
  await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
  server = undefined;
});

/** A server answering `GET /?...` with the stream, as the caller named in `x-caller`. */
async function serve(list: BuildList): Promise<string> {
  server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const query = decodeWith(BuildListQuery, Buffer.from(JSON.stringify(queryOf(url.searchParams))), 'query');
    const ac = new AbortController();
    res.on('close', () => ac.abort());
    const caller = CALLERS[String(req.headers['x-caller'])] ?? CALLERS.alpha;
    const last = req.headers['last-event-id'];
    void streamBuildList(list, caller as Caller, query, typeof last === 'string' ? last : undefined, res, ac.signal, { heartbeatMs: 60_000 });
  });
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', () => resolve()));
  return `http://127.0.0.1:${(server?.address() as AddressInfo).port}`;
}

/** Opens a stream and collects its events (parsed with the protocol's schema) and their ids. */
function open(url: string, caller: string, lastEventId?: string): { events: BuildListEvent[]; ids: string[]; closed: Promise<void> } {
  const ac = new AbortController();
  streams.push(ac);
  const events: BuildListEvent[] = [];
  const ids: string[] = [];
  const closed = (async () => {
    const res = await fetch(url, { headers: { 'x-caller': caller, ...(lastEventId === undefined ? {} : { 'last-event-id': lastEventId }) }, signal: ac.signal });
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    let buffer = '';
    for await (const chunk of res.body ?? []) {
      buffer += Buffer.from(chunk as Uint8Array).toString();
      let cut: number;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const message = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const fields = Object.fromEntries(message.split('\n').filter((l) => !l.startsWith(':')).map((l) => [l.slice(0, l.indexOf(': ')), l.slice(l.indexOf(': ') + 2)]));
        if (fields.data === undefined) continue;
        const event = BuildListEvent.parse(JSON.parse(fields.data));
        expect(fields.event).toBe(event.type);
        events.push(event);
        ids.push(fields.id ?? '');
      }
    }
  })().catch((e: unknown) => {
    if (!ac.signal.aborted) throw e;
  });
  return { events, ids, closed };
}

const idsOf = (events: BuildListEvent[]): string[] => events.flatMap((e) => (e.type === 'snapshot' ? e.builds.map((b) => `snapshot:${b.id}`) : e.type === 'upsert' ? [`upsert:${e.build.id}:${e.build.phase}`] : [`remove:${e.id}`]));

describe('GET /v1/builds?watch=1 (coordinator/sse-builds.ts)', () => {
  it("sends each tenant its snapshot, then only its own builds' changes; an admin sees both", async () => {
    const list = new BuildList();
    list.apply(record('a-1', 'alpha', '2026-11-29T10:00:00.000Z'));
    list.apply(record('b-1', 'beta', '2026-11-29T10:01:00.000Z'));
    const url = await serve(list);
    const alpha = open(`${url}/`, 'alpha');
    const beta = open(`${url}/`, 'beta');
    const admin = open(`${url}/`, 'admin');
    await eventually(() => alpha.events.length === 1 && beta.events.length === 1 && admin.events.length === 1, 5_000, 'snapshots');
    list.apply(record('b-2', 'beta', '2026-11-29T10:02:00.000Z'));
    list.apply(record('a-2', 'alpha', '2026-11-29T10:03:00.000Z'));
    list.apply(record('a-1', 'alpha', '2026-11-29T10:00:00.000Z', { phase: 'running', attempt: 1, workerId: 'w', startedAt: '2026-11-29T10:04:00.000Z' }, '2026-11-29T10:04:00.000Z'));
    await eventually(() => alpha.events.length === 3 && admin.events.length === 4, 5_000, 'changes');
    expect(idsOf(alpha.events)).toEqual(['snapshot:a-1', 'upsert:a-2:queued', 'upsert:a-1:running']);
    expect(alpha.events.at(-1)?.total).toBe(2);
    expect(idsOf(beta.events)).toEqual(['snapshot:b-1', 'upsert:b-2:queued']);
    expect(idsOf(admin.events)).toEqual(['snapshot:b-1', 'snapshot:a-1', 'upsert:b-2:queued', 'upsert:a-2:queued', 'upsert:a-1:running']);
    // nothing of alpha's ever reached beta's stream
    expect(JSON.stringify(beta.events)).not.toContain('alpha');
  });

  it('applies the filters: a build leaving a state filter is removed, one entering it is added', async () => {
    const list = new BuildList();
    list.apply(record('a-1', 'alpha', '2026-11-29T10:00:00.000Z'));
    const url = await serve(list);
    const queued = open(`${url}/?state=queued`, 'alpha');
    await eventually(() => queued.events.length === 1, 5_000, 'snapshot');
    list.apply(record('a-1', 'alpha', '2026-11-29T10:00:00.000Z', { phase: 'running', attempt: 1, workerId: 'w', startedAt: '2026-11-29T10:01:00.000Z' }, '2026-11-29T10:01:00.000Z'));
    list.apply(record('a-2', 'alpha', '2026-11-29T10:02:00.000Z'));
    await eventually(() => queued.events.length === 3, 5_000, 'changes');
    expect(idsOf(queued.events)).toEqual(['snapshot:a-1', 'remove:a-1', 'upsert:a-2:queued']);
    expect(queued.events.map((e) => e.total)).toEqual([1, 0, 1]);
  });

  it('resumes from Last-Event-ID with what changed meanwhile, and starts afresh from an unknown id', async () => {
    const list = new BuildList();
    list.apply(record('a-1', 'alpha', '2026-11-29T10:00:00.000Z'));
    const url = await serve(list);
    const first = open(`${url}/`, 'alpha');
    await eventually(() => first.events.length === 1, 5_000, 'snapshot');
    const last = first.ids.at(-1) ?? '';
    streams.at(-1)?.abort();
    list.apply(record('a-2', 'alpha', '2026-11-29T10:01:00.000Z'));
    list.apply(record('b-9', 'beta', '2026-11-29T10:01:30.000Z'));
    list.apply(record('a-2', 'alpha', '2026-11-29T10:01:00.000Z', { phase: 'cancelled', attempt: 0, finishedAt: '2026-11-29T10:02:00.000Z' }, '2026-11-29T10:02:00.000Z'));
    const resumed = open(`${url}/`, 'alpha', last);
    await eventually(() => resumed.events.length === 1, 5_000, 'replay');
    // one event for a-2 (its row now), none for beta's build
    expect(idsOf(resumed.events)).toEqual(['upsert:a-2:cancelled']);
    expect(resumed.events[0]?.total).toBe(2);
    const fresh = open(`${url}/`, 'alpha', 'zzzz-1');
    await eventually(() => fresh.events.length === 1, 5_000, 'snapshot');
    expect(idsOf(fresh.events)).toEqual(['snapshot:a-2', 'snapshot:a-1']);
  });
});
