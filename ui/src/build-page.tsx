import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, type BuildEvent, type BuildView, type GateResult, type Verdict } from './api.ts';
import { duration, shortDigest, time } from './format.ts';
import { streamLog } from './log-stream.ts';
import { LogView } from './log-view.ts';
import { PhaseBadge } from './builds-page.tsx';
import { buildHref, rebuildsHref } from './router.ts';
import { Table, type Column } from './table.tsx';

const TERMINAL = new Set(['pushed', 'failed', 'cancelled', 'expired']);

/** A line number asked for in the address (`#L1234`), or null. */
const lineInHash = (): number | null => {
  const m = /^#L(\d+)$/.exec(location.hash);
  return m === null ? null : Number(m[1]);
};

function Timeline({ events, build }: { events: BuildEvent[]; build: BuildView }) {
  const label = (e: BuildEvent): string => {
    switch (e.type) {
      case 'queued':
        return 'queued';
      case 'started':
        return `started on worker ${e.workerId ?? '?'}, attempt ${e.attempt ?? '?'}`;
      case 'verifying':
        return `verifying ${shortDigest(e.digest ?? '')}`;
      case 'verdict':
        return `verdict: ${e.verdict?.promoted === true ? 'promoted' : 'blocked'}`;
      case 'pushed':
        return `pushed ${(e.references ?? []).join(', ')}`;
      case 'failed':
        return `failed: ${e.error?.code ?? ''}`;
      case 'cancelled':
        return 'cancelled';
      case 'expired':
        return `expired after ${e.queueTtlSeconds ?? '?'} s in the queue`;
      case 'rebuild':
        return `rebuild: ${e.rebuildOf?.base ?? 'its base'} moved to ${shortDigest(e.rebuildOf?.to ?? '')}`;
      case 'vulnerable':
        return `a rescan found ${e.findings?.length ?? '?'} finding${e.findings?.length === 1 ? '' : 's'} in the pushed image`;
    }
  };
  const list = events.length > 0 ? events : [{ type: 'queued', buildId: build.id, at: build.createdAt } as BuildEvent];
  return (
    <ol class="timeline" aria-label="Timeline">
      {list.map((e, i) => (
        <li key={i} class={`ev ev-${e.type}`}>
          <time dateTime={e.at}>{time(e.at)}</time> <span>{label(e)}</span>
          {i > 0 && <span class="muted small"> (+{duration(list[i - 1]?.at ?? e.at, e.at)})</span>}
        </li>
      ))}
    </ol>
  );
}

const GATE_COLUMNS: readonly Column<GateResult>[] = [
  { header: 'Gate', rowHeader: true, cell: (g) => g.gate },
  { header: 'Outcome', cell: (g) => <span class={`badge out-${g.outcome}`}>{g.outcome}</span> },
  {
    header: 'Reason',
    cell: (g) => (
      <>
        <code>{g.code}</code> {g.reason}
      </>
    ),
  },
];

function Gates({ verdict }: { verdict: Verdict }) {
  const scan = verdict.gates.find((g) => g.scan !== undefined)?.scan;
  return (
    <section aria-labelledby="gates-h">
      <h2 id="gates-h">Gates {verdict.promoted ? <span class="badge ph-pushed">promoted</span> : <span class="badge ph-failed">blocked</span>}</h2>
      <Table
        class="gates"
        rows={verdict.gates}
        columns={GATE_COLUMNS}
        rowKey={(g) => g.gate}
        rowAttributes={(g) => ({ 'data-gate': g.gate, 'data-outcome': g.outcome, ...(g.outcome === 'block' ? { class: 'blocking' } : {}) })}
      />
      {verdict.officialBase !== undefined && <p>Derives from official image <code>{verdict.officialBase}</code></p>}
      {scan !== undefined && (
        <div class="scan">
          <h3>Scan</h3>
          <p>
            {scan.scanner.name} {scan.scanner.version}
            {scan.scanner.dbBuilt !== undefined && `, DB built ${time(scan.scanner.dbBuilt)}`}: {scan.total} findings, {scan.blocking.length} blocking
          </p>
          {scan.blocking.length > 0 && (
            <ul aria-label="Blocking findings">
              {scan.blocking.map((f, i) => (
                <li key={i}>
                  <code>{String(f.id ?? f.cve ?? '')}</code> {String(f.severity ?? '')} in {String(f.package ?? f.name ?? '')} {String(f.version ?? '')}
                </li>
              ))}
            </ul>
          )}
          {scan.allowlisted.length > 0 && (
            <ul aria-label="Allowlist entries applied">
              {scan.allowlisted.map((a, i) => (
                <li key={i}>
                  <code>{a.cve}</code> in {a.package}: {a.reason} (by {a.addedBy}, until {a.expires}){a.expired && <strong> expired</strong>}
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
    </section>
  );
}

function CopyButton({ text }: { text: string }) {
  const [done, setDone] = useState(false);
  return (
    <button
      type="button"
      class="copy"
      aria-label={`Copy ${text}`}
      onClick={() => {
        void navigator.clipboard.writeText(text).then(() => {
          setDone(true);
          setTimeout(() => setDone(false), 1500);
        });
      }}
    >
      {done ? 'Copied' : 'Copy'}
    </button>
  );
}

function LogPanel({ id, follow, onEvent, onEnd }: { id: string; follow: boolean; onEvent: (e: BuildEvent) => void; onEnd: (b: BuildView) => void }) {
  const ended = (b: BuildView): void => {
    // A step that failed is the last one the builder started: mark its header.
    if (b.state.phase === 'failed' && b.state.error?.code === 'E_BUILD_STEP_FAILED') view.current?.markFailedStep();
    onEnd(b);
  };
  const scroller = useRef<HTMLDivElement>(null);
  const view = useRef<LogView | null>(null);
  const [following, setFollowing] = useState(true);
  const [count, setCount] = useState(0);
  const [streaming, setStreaming] = useState(true);
  const [error, setError] = useState<string | null>(null);
  const [term, setTerm] = useState('');
  const [found, setFound] = useState<{ total: number; at: number } | null>(null);

  useEffect(() => {
    const el = scroller.current;
    if (el === null) return;
    let wanted = lineInHash();
    const lv = new LogView(el, {
      follow: setFollowing,
      count: (n) => {
        setCount(n);
        if (wanted !== null && n >= wanted && lv.scrollToLine(wanted)) wanted = null;
      },
    });
    view.current = lv;
    if (wanted !== null) lv.setFollow(false);
    const ac = new AbortController();
    let first = true;
    streamLog(
      id,
      follow,
      {
        rows: (batch) => {
          if (first) {
            first = false;
            performance.mark('fleet:first-log-line');
          }
          lv.append(batch);
        },
        event: onEvent,
        end: ended,
      },
      ac.signal,
    )
      .then(() => {
        // the toolbar's count trails by up to 250 ms (LogView): "N lines" without ", live" must be the whole log
        setCount(lv.lineCount);
        setStreaming(false);
      })
      .catch((e: unknown) => {
        if (ac.signal.aborted) return;
        setStreaming(false);
        setError(e instanceof ApiError ? `${e.code}: ${e.message}` : String(e));
      });
    const onHash = (): void => {
      const n = lineInHash();
      if (n !== null) lv.scrollToLine(n);
    };
    addEventListener('hashchange', onHash);
    return () => {
      ac.abort();
      removeEventListener('hashchange', onHash);
      lv.destroy();
      view.current = null;
    };
  }, [id]);

  const runSearch = (step: 1 | -1 | 0): void => {
    const lv = view.current;
    if (lv === null) return;
    if (step === 0) {
      const total = lv.search(term);
      const hit = lv.nextMatch(1);
      setFound({ total, at: hit?.at ?? 0 });
      if (hit !== null) history.replaceState(history.state, '', `#L${hit.line}`);
      return;
    }
    const hit = lv.nextMatch(step);
    if (hit !== null) {
      setFound((f) => ({ total: f?.total ?? 0, at: hit.at }));
      history.replaceState(history.state, '', `#L${hit.line}`);
    }
  };

  const download = (): void => {
    const lv = view.current;
    if (lv === null) return;
    const url = URL.createObjectURL(new Blob([lv.plainText()], { type: 'text/plain;charset=utf-8' }));
    const a = Object.assign(document.createElement('a'), { href: url, download: `${id}.log` });
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  };

  return (
    <section class="log-panel" aria-labelledby="log-h">
      <div class="log-bar">
        <h2 id="log-h">
          Log <span class="muted small" data-testid="line-count">{count} lines{streaming ? (follow ? ', live' : ', loading') : ''}</span>
        </h2>
        <button type="button" aria-pressed={following} onClick={() => view.current?.setFollow(!following)}>
          {following ? 'Pause' : 'Follow'}
        </button>
        <button type="button" onClick={() => view.current?.foldAll(true)}>Fold steps</button>
        <button type="button" onClick={() => view.current?.foldAll(false)}>Unfold</button>
        <form
          class="log-search"
          role="search"
          onSubmit={(e) => {
            e.preventDefault();
            runSearch(found === null ? 0 : 1);
          }}
        >
          <label for="log-q" class="sr-only">Search the log</label>
          <input
            id="log-q"
            type="search"
            placeholder="search log"
            value={term}
            onInput={(e) => {
              setTerm(e.currentTarget.value);
              setFound(null);
            }}
            onKeyDown={(e) => {
              if (e.key === 'Enter' && e.shiftKey) {
                e.preventDefault();
                runSearch(-1);
              }
            }}
          />
          <button type="submit">Find</button>
          <button type="button" aria-label="Previous match" onClick={() => runSearch(-1)} disabled={found === null || found.total === 0}>
            ↑
          </button>
          {found !== null && <span class="muted small" aria-live="polite" data-testid="matches">{found.total === 0 ? 'no match' : `${found.at}/${found.total}`}</span>}
        </form>
        <button type="button" onClick={download} disabled={streaming && follow}>
          Download
        </button>
      </div>
      {error !== null && <p role="alert" class="error">{error}</p>}
      <div class="log" ref={scroller} tabIndex={0} role="log" aria-label={`Log of ${id}`} />
    </section>
  );
}

export function BuildPage({ id }: { id: string }) {
  const [build, setBuild] = useState<BuildView | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [events, setEvents] = useState<BuildEvent[]>([]);
  const [verdict, setVerdict] = useState<Verdict | null>(null);

  useEffect(() => {
    const ac = new AbortController();
    api<{ build: BuildView }>(`/v1/builds/${encodeURIComponent(id)}`, {}, ac.signal)
      .then((r) => setBuild(r.build))
      .catch((e: unknown) => {
        if (!ac.signal.aborted) setError(e instanceof ApiError ? e : new ApiError(0, 'E_NETWORK', String(e)));
      });
    return () => ac.abort();
  }, [id]);

  if (error !== null) {
    return (
      <section>
        <h1>{id}</h1>
        <p role="alert" class="error">
          {error.code}: {error.message}
        </p>
      </section>
    );
  }
  if (build === null) return <p aria-busy="true">Loading {id}…</p>;
  const s = build.state;
  const v = s.verdict ?? verdict;
  const reference = s.phase === 'pushed' ? s.references?.[0] : undefined;
  return (
    <article class="build" aria-labelledby="build-h">
      <header class="build-head">
        <h1 id="build-h">{build.id}</h1>
        <PhaseBadge phase={s.phase} />
      </header>
      <dl class="facts">
        <dt>Image</dt>
        <dd>
          {build.request.image.repository}:{build.request.image.tags.join(', ')}
        </dd>
        <dt>Pool</dt>
        <dd>{build.request.pool}</dd>
        <dt>Kind</dt>
        <dd>{build.request.kind}</dd>
        <dt>Tenant</dt>
        <dd>{build.tenant}</dd>
        {reference !== undefined && (
          <>
            <dt>Pushed</dt>
            <dd class="ref">
              <code data-testid="reference">{reference}</code> <CopyButton text={reference} />
              {s.digest !== undefined && <div class="muted small">{s.digest}</div>}
            </dd>
          </>
        )}
      </dl>
      {build.request.rebuildOf !== undefined && (
        <p class="rebuild-of" data-testid="rebuild-of">
          Rebuild of <a href={buildHref(build.request.rebuildOf.buildId)}>{build.request.rebuildOf.buildId}</a> because{' '}
          <a href={rebuildsHref(build.request.rebuildOf.base)}>
            <code>{build.request.rebuildOf.base}</code>
          </a>{' '}
          moved <code title={build.request.rebuildOf.from}>{shortDigest(build.request.rebuildOf.from)}</code> → <code title={build.request.rebuildOf.to}>{shortDigest(build.request.rebuildOf.to)}</code>
        </p>
      )}
      {s.phase === 'failed' && s.error !== undefined && (
        <div class="failure" role="status">
          <strong>{s.error.code}</strong>: {s.error.message}
        </div>
      )}
      <div class="cols">
        <section aria-labelledby="tl-h">
          <h2 id="tl-h">Timeline</h2>
          <Timeline events={events} build={build} />
        </section>
        {s.bases !== undefined && s.bases.length > 0 && (
          <section aria-labelledby="prov-h">
            <h2 id="prov-h">Provenance</h2>
            <ul class="bases">
              {s.bases.map((b) => (
                <li key={b.name}>
                  <code>{b.name}</code> @ <code title={b.digest}>{shortDigest(b.digest)}</code>
                </li>
              ))}
            </ul>
          </section>
        )}
      </div>
      {v !== null && v !== undefined && <Gates verdict={v} />}
      <LogPanel
        id={build.id}
        follow={!TERMINAL.has(s.phase)}
        onEvent={(e) => {
          setEvents((list) => [...list, e]);
          // the record carries what events do not (bases, the final verdict): read it again
          api<{ build: BuildView }>(`/v1/builds/${encodeURIComponent(id)}`)
            .then((r) => setBuild(r.build))
            .catch(() => undefined);
          if (e.type === 'verdict' && e.verdict !== undefined) setVerdict(e.verdict);
        }}
        onEnd={(b) => setBuild(b)}
      />
    </article>
  );
}
