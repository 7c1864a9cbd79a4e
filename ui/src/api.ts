/**
 * The console's only way to the coordinator: the same HTTP API as every other client, with the
 * bearer token the user pasted. Shapes mirror protocol/ (kept structural here: the browser bundle
 * does not pull in zod; the server validates everything it is sent).
 */

const TOKEN_KEY = 'fleet.token';

export const token = {
  get: (): string | null => sessionStorage.getItem(TOKEN_KEY),
  set: (t: string): void => sessionStorage.setItem(TOKEN_KEY, t),
  clear: (): void => sessionStorage.removeItem(TOKEN_KEY),
};

export type Phase = 'queued' | 'running' | 'verifying' | 'pushed' | 'failed' | 'cancelled' | 'expired';
export const PHASES: readonly Phase[] = ['queued', 'running', 'verifying', 'pushed', 'failed', 'cancelled', 'expired'];

export interface ErrorBody {
  code: string;
  message: string;
  details?: unknown;
}

export interface BuildSummary {
  id: string;
  tenant: string;
  phase: Phase;
  pool: string;
  repository: string;
  tags: string[];
  kind: string;
  createdAt: string;
  updatedAt: string;
  attempt?: number;
  workerId?: string;
  builder?: string;
  error?: string;
}

export interface Finding {
  id?: string;
  cve?: string;
  package?: string;
  name?: string;
  version?: string;
  severity?: string;
  [k: string]: unknown;
}

export interface GateResult {
  gate: string;
  outcome: 'pass' | 'block' | 'warn' | 'excepted' | 'skipped';
  code: string;
  reason: string;
  scan?: {
    scanner: { name: string; version: string; dbBuilt?: string };
    blocking: Finding[];
    allowlisted: { cve: string; package: string; reason: string; expires: string; addedBy: string; expired: boolean }[];
    total: number;
  };
}

export interface Verdict {
  digest: string;
  promoted: boolean;
  gates: GateResult[];
  officialBase?: string;
}

export interface BaseImage {
  name: string;
  digest: string;
}

export interface BuildState {
  phase: Phase;
  attempt?: number;
  workerId?: string;
  startedAt?: string;
  finishedAt?: string;
  digest?: string;
  references?: string[];
  verdict?: Verdict;
  bases?: BaseImage[];
  error?: ErrorBody;
  queueTtlSeconds?: number;
}

export interface BuildView {
  id: string;
  tenant: string;
  createdAt: string;
  updatedAt: string;
  request: { pool: string; kind: string; image: { repository: string; tags: string[] }; dockerfile?: string; target?: string; rebuildOf?: RebuildOf };
  state: BuildState;
}

/** Why a build exists when a rebuild wave submitted it (protocol/rebuild.ts RebuildOf). */
export interface RebuildOf {
  buildId: string;
  base: string;
  from: string;
  to: string;
  reason: string;
}

/** One dependent in a wave, with its build's phase now (protocol/rebuild.ts RebuildWaveView). */
export interface WaveMember {
  repository: string;
  tags: string[];
  tenant: string;
  pool: string;
  previousBuildId: string;
  rebuildId: string;
  from: string;
  status: 'pending' | 'submitted' | 'refused' | 'superseded';
  submittedAt?: string;
  error?: ErrorBody;
  ended?: string;
  /** the build's phase, or the member's status before it has a build */
  phase: string;
  digest?: string;
  /** the error code its build failed with (E_GATE_BLOCKED: a gate blocked it) */
  failedWith?: string;
}

export interface RebuildWave {
  id: string;
  base: string;
  to: string;
  noticedBy: 'notification' | 'poller' | 'promotion';
  noticedAt: string;
  createdAt: string;
  members: WaveMember[];
  closedAt?: string;
}

export interface BuildEvent {
  type: 'queued' | 'started' | 'verifying' | 'verdict' | 'pushed' | 'failed' | 'cancelled' | 'expired' | 'rebuild' | 'vulnerable';
  buildId: string;
  at: string;
  attempt?: number;
  workerId?: string;
  digest?: string;
  references?: string[];
  verdict?: Verdict;
  error?: ErrorBody;
  queueTtlSeconds?: number;
  rebuildOf?: RebuildOf;
  findings?: Finding[];
}

export interface LogLine {
  attempt: number;
  n: number;
  stream: 'stdout' | 'stderr' | 'system';
  at: string;
  text: string;
}

export interface WorkerInfo {
  workerId: string;
  pool: string;
  builder: string;
  version: string;
  state: string;
  buildId?: string;
  since: string;
  at: string;
}

export interface DeadLetter {
  buildId: string;
  pool: string;
  deliveries: number;
  parkedAt: string;
  lastError: string;
}

/** A refusal from the API, with the fleet's error code. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Called when the API refuses the token: the app returns to sign-in. */
let onUnauthenticated: () => void = () => undefined;
export const setOnUnauthenticated = (f: () => void): void => {
  onUnauthenticated = f;
};

function headers(): Record<string, string> {
  const t = token.get();
  return t === null ? {} : { authorization: `Bearer ${t}` };
}

async function refusal(res: Response): Promise<ApiError> {
  let code = 'E_HTTP';
  let message = `${res.status} ${res.statusText}`;
  try {
    const body = (await res.json()) as { error?: ErrorBody };
    if (body.error !== undefined) {
      code = body.error.code;
      message = body.error.message;
    }
  } catch {
    // not JSON: keep the status line
  }
  if (res.status === 401) onUnauthenticated();
  return new ApiError(res.status, code, message);
}

/** A refusal the log worker (log-worker.ts) reported: the same as one read here, 401 included. */
export function refused(status: number, code: string, message: string): ApiError {
  if (status === 401) onUnauthenticated();
  return new ApiError(status, code, message);
}

export async function api<T>(path: string, init: RequestInit = {}, signal?: AbortSignal): Promise<T> {
  const res = await fetch(path, { ...init, headers: { ...headers(), ...(init.headers as Record<string, string> | undefined) }, ...(signal === undefined ? {} : { signal }) });
  if (!res.ok) throw await refusal(res);
  return (await res.json()) as T;
}

/** One Server-Sent Event: its name (`message` when unnamed), data and id (null when it had none). */
export interface SseMessage {
  event: string;
  data: string;
  id: string | null;
}

/**
 * Reads a `text/event-stream` response through fetch (EventSource cannot send an Authorization
 * header). `chunk` gets the complete messages of each network read at once, in order, so a flood
 * costs one call per read, not per message. Comment lines (keep-alives) are skipped.
 */
export async function readSse(res: Response, chunk: (messages: SseMessage[]) => void): Promise<void> {
  if (!res.ok || res.body === null) throw await refusal(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += value;
    const messages: SseMessage[] = [];
    let cut: number;
    let pos = 0;
    while ((cut = buffer.indexOf('\n\n', pos)) >= 0) {
      const message = buffer.slice(pos, cut);
      pos = cut + 2;
      let event = 'message';
      let data = '';
      let id: string | null = null;
      for (const field of message.split('\n')) {
        if (field.startsWith('event: ')) event = field.slice(7);
        else if (field.startsWith('data: ')) data += field.slice(6);
        else if (field.startsWith('id: ')) id = field.slice(4);
      }
      if (data !== '') messages.push({ event, data, id });
    }
    buffer = buffer.slice(pos);
    if (messages.length > 0) chunk(messages);
  }
}

/** `GET /v1/builds?watch=1` (protocol/build-list.ts BuildListEvent), structurally. */
export type BuildListEvent =
  | { type: 'snapshot'; builds: BuildSummary[]; total: number }
  | { type: 'upsert'; build: BuildSummary; total: number }
  | { type: 'remove'; id: string; total: number };

/**
 * The builds list, live: `events` gets the snapshot, then each change. Resolves when the server
 * ends the stream; `lastEventId` (the id of the last event read, kept up to date in `cursor`)
 * lets the server resume instead of sending a new snapshot.
 */
export async function streamBuilds(query: string, cursor: { lastEventId: string | null }, events: (batch: BuildListEvent[]) => void, signal: AbortSignal): Promise<void> {
  const resume: Record<string, string> = cursor.lastEventId === null ? {} : { 'last-event-id': cursor.lastEventId };
  const res = await fetch(`/v1/builds?${query}${query === '' ? '' : '&'}watch=1`, { headers: { ...headers(), ...resume }, signal });
  await readSse(res, (messages) => {
    const batch: BuildListEvent[] = [];
    for (const m of messages) {
      if (m.event !== 'snapshot' && m.event !== 'upsert' && m.event !== 'remove') continue;
      batch.push(JSON.parse(m.data) as BuildListEvent);
      if (m.id !== null) cursor.lastEventId = m.id;
    }
    if (batch.length > 0) events(batch);
  });
}
