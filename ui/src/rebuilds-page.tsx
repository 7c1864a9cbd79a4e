import { useState } from 'preact/hooks';
import { api, type RebuildWave, type WaveMember } from './api.ts';
import { buildHref } from './router.ts';
import { shortDigest, time } from './format.ts';
import { usePoll } from './use-poll.ts';
import { PhaseBadge } from './builds-page.tsx';
import { Table, type Column } from './table.tsx';

/** Asked again as often as the builds list: a wave's rebuilds move through their states while it is open. */
const POLL_MS = 2_000;

const SOURCE: Readonly<Record<RebuildWave['noticedBy'], string>> = {
  notification: 'registry notification',
  poller: 'poller',
  promotion: 'promotion',
};

/** A digest shortened for reading, the whole of it on hover and for screen readers. */
function Digest({ digest }: { digest: string }) {
  return (
    <code title={digest} aria-label={digest}>
      {shortDigest(digest)}
    </code>
  );
}

/** What happened to a dependent: its build's phase once it has one ("blocked" when a gate stopped it), else why it has none. */
function MemberState({ m }: { m: WaveMember }) {
  return (
    <>
      {m.failedWith === 'E_GATE_BLOCKED' ? <span class="badge ph-failed">blocked</span> : <PhaseBadge phase={m.phase} />}
      {m.failedWith !== undefined && m.failedWith !== 'E_GATE_BLOCKED' && <div class="muted small">{m.failedWith}</div>}
      {m.status === 'refused' && m.error !== undefined && <div class="muted small">{m.error.code}: {m.error.message}</div>}
      {m.status === 'superseded' && <div class="muted small">the base moved again first</div>}
    </>
  );
}

/** A wave's dependents; the image names the row, with its old base digest when members differ in it. */
function memberColumns(sameFrom: boolean): Column<WaveMember>[] {
  return [
    {
      header: 'Image',
      rowHeader: true,
      cell: (m) => (
        <>
          {m.repository}:{m.tags.join(',')}
          {!sameFrom && (
            <div class="small">
              from <Digest digest={m.from} />
            </div>
          )}
        </>
      ),
    },
    { header: 'State', cell: (m) => <MemberState m={m} /> },
    { header: 'Rebuild', cell: (m) => (m.status === 'submitted' ? <a href={buildHref(m.rebuildId)}>{m.rebuildId}</a> : <span class="muted">{m.rebuildId}</span>) },
    { header: 'Previous build', class: 'wide', cell: (m) => <a href={buildHref(m.previousBuildId)}>{m.previousBuildId}</a> },
    { header: 'Tenant', class: 'wide', cell: (m) => m.tenant },
  ];
}

function Wave({ wave }: { wave: RebuildWave }) {
  // every member of one base's wave moved from the same digest, as a rule; name each where they differ
  const from = wave.members[0]?.from;
  const sameFrom = wave.members.every((m) => m.from === from);
  return (
    <section class="wave" data-wave={wave.id} aria-label={`Wave: ${wave.base} moved to ${shortDigest(wave.to)}`}>
      <h2>
        <code class="base">{wave.base}</code>
      </h2>
      <p class="move">
        {sameFrom && from !== undefined ? <Digest digest={from} /> : <span class="muted">several digests</span>} → <Digest digest={wave.to} />
      </p>
      <p class="muted small">
        started <time dateTime={wave.createdAt}>{time(wave.createdAt)}</time> · noticed by {SOURCE[wave.noticedBy]}
        {wave.closedAt !== undefined ? (
          <>
            {' '}
            · ended <time dateTime={wave.closedAt}>{time(wave.closedAt)}</time>
          </>
        ) : (
          ' · in progress'
        )}
      </p>
      {wave.members.length === 0 ? (
        <p class="muted">None of your images depends on this base.</p>
      ) : (
        <Table
          class="members"
          caption={`Dependents of ${wave.base} rebuilt in this wave`}
          rows={wave.members}
          columns={memberColumns(sameFrom)}
          rowKey={(m) => m.rebuildId}
          rowAttributes={(m) => ({ 'data-member': m.rebuildId, 'data-phase': m.phase })}
        />
      )}
    </section>
  );
}

export function RebuildsPage() {
  const [base, setBase] = useState(() => new URLSearchParams(location.search).get('base') ?? '');
  const query = base.trim() === '' ? '' : `?${new URLSearchParams({ base: base.trim() }).toString()}`;
  const { data, error } = usePoll((signal) => api<{ waves: RebuildWave[] }>(`/v1/rebuilds${query}`, {}, signal), POLL_MS, query);
  return (
    <section aria-labelledby="rebuilds-h">
      <h1 id="rebuilds-h">Rebuild waves</h1>
      <p class="muted">When a base image moves to a new digest, every image built on it is rebuilt once. Newest first.</p>
      <form class="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <label>
          Base
          <input
            type="search"
            name="base"
            value={base}
            placeholder="official/base:1"
            spellcheck={false}
            onInput={(e) => {
              const next = e.currentTarget.value;
              setBase(next);
              history.replaceState(null, '', `/ui/rebuilds${next.trim() === '' ? '' : `?${new URLSearchParams({ base: next.trim() }).toString()}`}`);
            }}
          />
        </label>
      </form>
      {error !== null && <p role="alert" class="error">{error.status === 404 ? 'Rebuilds are not enabled on this fleet.' : `${error.code}: ${error.message}`}</p>}
      <p class="muted" aria-live="polite">{data === null ? 'Loading…' : `${data.waves.length} wave${data.waves.length === 1 ? '' : 's'}`}</p>
      {data?.waves.map((w) => <Wave key={w.id} wave={w} />)}
    </section>
  );
}
