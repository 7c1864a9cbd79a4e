import { useState } from 'preact/hooks';
import { PHASES, type BuildSummary } from './api.ts';
import { Table, type Column } from './table.tsx';
import { buildHref } from './router.ts';
import { time } from './format.ts';
import { useBuildList } from './use-build-list.ts';

/** The newest this many builds are shown (the count says how many matched in all). */
const LIMIT = 200;

interface Filters {
  state: string;
  pool: string;
  repository: string;
  builder: string;
  since: string;
  q: string;
}

const EMPTY: Filters = { state: '', pool: '', repository: '', builder: '', since: '', q: '' };

function queryOf(f: Filters): string {
  const p = new URLSearchParams();
  for (const key of ['state', 'pool', 'repository', 'builder', 'q'] as const) if (f[key].trim() !== '') p.set(key, f[key].trim());
  if (f.since !== '') {
    const d = new Date(f.since);
    if (!Number.isNaN(d.getTime())) p.set('since', d.toISOString());
  }
  p.set('limit', String(LIMIT));
  return p.toString();
}

export function PhaseBadge({ phase }: { phase: string }) {
  return <span class={`badge ph-${phase}`}>{phase}</span>;
}

const BUILD_COLUMNS: readonly Column<BuildSummary>[] = [
  {
    header: 'Build',
    cell: (b) => (
      <>
        <a href={buildHref(b.id)}>{b.id}</a>
        {b.error !== undefined && <div class="muted small">{b.error}</div>}
      </>
    ),
  },
  {
    header: 'State',
    cell: (b) => (
      <>
        <PhaseBadge phase={b.phase} />
        {b.attempt !== undefined && b.attempt > 1 && <span class="muted small"> #{b.attempt}</span>}
      </>
    ),
  },
  { header: 'Repository', class: 'wide', cell: (b) => `${b.repository}:${b.tags.join(',')}` },
  { header: 'Pool', class: 'wide', cell: (b) => b.pool },
  { header: 'Builder', class: 'wide', cell: (b) => b.builder ?? '' },
  { header: 'Created', cell: (b) => time(b.createdAt) },
];

export function BuildsPage() {
  const [filters, setFilters] = useState<Filters>(() => ({ ...EMPTY, ...Object.fromEntries(new URLSearchParams(location.search)) }));
  const query = queryOf(filters);
  // live from the coordinator's stream; polled while the stream is down
  const { data, error, mode } = useBuildList(query, LIMIT);
  const set = (key: keyof Filters) => (e: Event) => {
    const next = { ...filters, [key]: (e.currentTarget as HTMLInputElement | HTMLSelectElement).value };
    setFilters(next);
    const q = new URLSearchParams(Object.entries(next).filter(([, v]) => v !== ''));
    history.replaceState(null, '', `/ui/${q.size > 0 ? `?${q.toString()}` : ''}`);
  };
  return (
    <section aria-labelledby="builds-h" data-list-mode={mode}>
      <h1 id="builds-h">Builds</h1>
      <form class="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <label>
          Build id
          <input type="search" name="q" value={filters.q} onInput={set('q')} placeholder="search by id" />
        </label>
        <label>
          State
          <select name="state" value={filters.state} onChange={set('state')}>
            <option value="">any</option>
            {PHASES.map((p) => (
              <option value={p}>{p}</option>
            ))}
          </select>
        </label>
        <label>
          Pool
          <input name="pool" value={filters.pool} onInput={set('pool')} placeholder="any" />
        </label>
        <label>
          Repository
          <input name="repository" value={filters.repository} onInput={set('repository')} placeholder="app/x or app/" />
        </label>
        <label>
          Builder
          <select name="builder" value={filters.builder} onChange={set('builder')}>
            <option value="">any</option>
            <option value="buildah">buildah</option>
            <option value="buildkit">buildkit</option>
            <option value="kaniko">kaniko</option>
          </select>
        </label>
        <label class="since">
          Since
          <input type="datetime-local" name="since" value={filters.since} onInput={set('since')} />
        </label>
      </form>
      {error !== null && <p role="alert" class="error">{error.code}: {error.message}</p>}
      <p class="muted" aria-live="polite">
        {data === null ? 'Loading…' : `${data.total} build${data.total === 1 ? '' : 's'}${data.total > data.builds.length ? `, newest ${data.builds.length} shown` : ''}`}
        {mode === 'poll' && <span class="small"> (live updates unavailable: asked again every 2 s)</span>}
      </p>
      <Table class="builds" rows={data?.builds ?? []} columns={BUILD_COLUMNS} rowKey={(b) => b.id} rowAttributes={(b) => ({ 'data-build': b.id, 'data-phase': b.phase })} />
    </section>
  );
}
