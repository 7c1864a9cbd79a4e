import { useState } from 'preact/hooks';
import { api, ApiError, type DeadLetter, type WorkerInfo } from './api.ts';
import { buildHref } from './router.ts';
import { duration, time } from './format.ts';
import { usePoll } from './use-poll.ts';
import { Table, type Column } from './table.tsx';

const WORKER_COLUMNS: readonly Column<WorkerInfo>[] = [
  {
    header: 'Worker',
    cell: (w) => (
      <>
        {w.workerId}
        <div class="muted small">v{w.version}</div>
      </>
    ),
  },
  { header: 'Pool', cell: (w) => w.pool },
  { header: 'Builder', cell: (w) => w.builder },
  {
    header: 'State',
    cell: (w) => (
      <>
        <span class={`badge ws-${w.state}`}>{w.state}</span> <span class="muted small">{duration(w.since)}</span>
      </>
    ),
  },
  { header: 'Build', cell: (w) => (w.buildId !== undefined ? <a href={buildHref(w.buildId)}>{w.buildId}</a> : w.state === 'building' ? <span class="muted">another tenant's</span> : '') },
];

/** The dead letters' columns; `act` retries or drops one. */
function letterColumns(act: (letter: DeadLetter, op: 'retry' | 'drop') => Promise<void>): Column<DeadLetter>[] {
  return [
    { header: 'Build', cell: (l) => <a href={buildHref(l.buildId)}>{l.buildId}</a> },
    { header: 'Pool', cell: (l) => l.pool },
    { header: 'Deliveries', cell: (l) => l.deliveries },
    { header: 'Parked', cell: (l) => time(l.parkedAt) },
    { header: 'Last error', cellClass: 'small', cell: (l) => l.lastError },
    {
      header: 'Actions',
      cellClass: 'actions',
      cell: (l) => (
        <>
          <button type="button" onClick={() => void act(l, 'retry')}>Retry</button>
          <button type="button" class="danger" onClick={() => void act(l, 'drop')}>Drop</button>
        </>
      ),
    },
  ];
}

export function WorkersPage() {
  const { data, error } = usePoll((signal) => api<{ workers: WorkerInfo[] }>('/v1/workers', {}, signal), 3_000, 'workers');
  return (
    <section aria-labelledby="workers-h">
      <h1 id="workers-h">Workers</h1>
      {error !== null && <p role="alert" class="error">{error.code}: {error.message}</p>}
      {data !== null && data.workers.length === 0 && <p>No worker has announced itself.</p>}
      <Table rows={data?.workers ?? []} columns={WORKER_COLUMNS} rowKey={(w) => w.workerId} rowAttributes={(w) => ({ 'data-worker': w.workerId })} />
    </section>
  );
}

export function DeadLettersPage() {
  const [tick, setTick] = useState(0);
  const [message, setMessage] = useState<string | null>(null);
  const { data, error } = usePoll((signal) => api<{ letters: DeadLetter[] }>('/v1/dead-letters', {}, signal), 5_000, `dlq-${tick}`);
  const act = async (letter: DeadLetter, op: 'retry' | 'drop'): Promise<void> => {
    if (op === 'drop' && !confirm(`Drop the dead letter of ${letter.buildId}? The job is gone for good.`)) return;
    try {
      const id = encodeURIComponent(letter.buildId);
      if (op === 'retry') {
        const r = await api<{ retriedAs: string }>(`/v1/dead-letters/${id}/retry`, { method: 'POST' });
        setMessage(`${letter.buildId} submitted again as ${r.retriedAs}`);
      } else {
        await api(`/v1/dead-letters/${id}`, { method: 'DELETE' });
        setMessage(`${letter.buildId} dropped`);
      }
    } catch (e) {
      setMessage(e instanceof ApiError ? `${e.code}: ${e.message}` : String(e));
    }
    setTick((t) => t + 1);
  };
  return (
    <section aria-labelledby="dlq-h">
      <h1 id="dlq-h">Dead letters</h1>
      <p class="muted">Jobs parked after they used up their deliveries. Platform admins may retry (a new build id) or drop them.</p>
      {error !== null && <p role="alert" class="error">{error.status === 403 ? 'Only platform admins see the dead letter queue.' : `${error.code}: ${error.message}`}</p>}
      {message !== null && <p role="status">{message}</p>}
      {data !== null && data.letters.length === 0 && <p>The queue is empty.</p>}
      {data !== null && data.letters.length > 0 && (
        <Table rows={data.letters} columns={letterColumns(act)} rowKey={(l) => l.buildId} rowAttributes={(l) => ({ 'data-letter': l.buildId })} />
      )}
    </section>
  );
}
