import { parseAnsi, stripAnsi } from './ansi.ts';
import { LineStore } from './line-store.ts';
import type { LogRows } from './log-rows.ts';

/** Every row is one line high; fixed, so a line's position is arithmetic, not measurement. */
export const ROW_HEIGHT = 18;
/**
 * Rows rendered beyond the viewport on each side, so a scroll step never shows a gap. Six keeps
 * the tallest log panel (44rem: 40 rows) at 53 row nodes.
 */
const OVERSCAN = 6;
/** The line count is told to the toolbar at most this often: each telling re-renders the panel. */
const COUNT_EVERY_MS = 250;

export interface LogViewEvents {
  /** following changed (the user scrolled away, or back to the end) */
  follow(on: boolean): void;
  /** the line count changed (for the toolbar) */
  count(lines: number): void;
}

/**
 * A virtualized log: lines live in compact arrays (text as UTF-8 bytes, stream, enclosing step header), and the
 * DOM holds only the rows the viewport shows plus a small overscan, reused as the user scrolls.
 * Lines arrive already parsed (log-worker.ts reads and classifies them off the main thread), are
 * queued and appended once per animation frame, so a build printing tens of thousands of lines a
 * second costs one layout per frame. Text goes in as text nodes only.
 */
export class LogView {
  private readonly texts = new LineStore();
  private readonly streams: number[] = [];
  /** index of the step header each line belongs to, -1 before the first */
  private readonly owner: number[] = [];
  private readonly headers = new Set<number>();
  private readonly folded = new Set<number>();
  /** line index per visible row; null while nothing is folded (row = line) */
  private rows: number[] | null = null;
  private pending: LogRows[] = [];
  private pendingLines = 0;
  private frame = 0;
  /** the line count last told to `events.count` */
  private reported = 0;
  private following = true;
  /**
   * The viewport's height and scroll offset as this view last set or saw them. A flood redraws
   * every frame; reading them back from the DOM after the spacer grew would force a layout each
   * time, so they are kept here (the height from a ResizeObserver, the offset from scroll events).
   */
  private viewport: number;
  private top = 0;
  private height = 0;
  private countTimer = 0;
  private heightDirty = false;
  private scrollDirty = false;
  private readonly resize: ResizeObserver;
  private term = '';
  private matches: number[] = [];
  private matchAt = -1;
  private target = -1;
  /** the step header of the step a failed build stopped in, -1 if none */
  private failedStep = -1;
  private readonly spacer: HTMLDivElement;
  private readonly pool: HTMLDivElement[] = [];
  /** what each pooled row shows: line index and the render generation it was drawn in */
  private readonly shown: { line: number; gen: number }[] = [];
  private gen = 0;

  constructor(
    private readonly scroller: HTMLElement,
    private readonly events: LogViewEvents,
  ) {
    this.spacer = document.createElement('div');
    this.spacer.className = 'log-spacer';
    scroller.append(this.spacer);
    this.viewport = scroller.clientHeight;
    this.resize = new ResizeObserver(() => {
      this.viewport = scroller.clientHeight;
      this.top = scroller.scrollTop;
      this.render();
    });
    this.resize.observe(scroller);
    scroller.addEventListener('scroll', this.onScroll, { passive: true });
    scroller.addEventListener('click', this.onClick);
  }

  destroy(): void {
    cancelAnimationFrame(this.frame);
    clearTimeout(this.countTimer);
    this.resize.disconnect();
    this.scroller.removeEventListener('scroll', this.onScroll);
    this.scroller.removeEventListener('click', this.onClick);
    this.scroller.replaceChildren();
  }

  /** Every line appended, drawn yet or not. */
  get lineCount(): number {
    return this.texts.length + this.pendingLines;
  }

  /** Queues lines; they are drawn on the next frame. */
  append(rows: LogRows): void {
    this.pending.push(rows);
    this.pendingLines += rows.ends.length;
    this.schedule();
  }

  /** The whole log as plain text (what "download" saves). */
  plainText(): string {
    this.flush();
    const out: string[] = [];
    for (let i = 0; i < this.texts.length; i++) out.push(stripAnsi(this.texts.text(i)));
    return out.join('\n') + (out.length > 0 ? '\n' : '');
  }

  setFollow(on: boolean): void {
    if (this.following === on) return;
    this.following = on;
    this.events.follow(on);
    if (on) this.schedule();
  }

  /** Highlights `term` (case-insensitive) and returns how many lines contain it. */
  search(term: string): number {
    this.flush();
    this.term = term.toLowerCase();
    this.matches = [];
    this.matchAt = -1;
    if (this.term !== '') {
      for (let i = 0; i < this.texts.length; i++) if (stripAnsi(this.texts.text(i)).toLowerCase().includes(this.term)) this.matches.push(i);
    }
    this.gen++;
    this.render();
    return this.matches.length;
  }

  /** Moves to the next (or previous) match; returns its 1-based position among the matches, and its line number. */
  nextMatch(step: 1 | -1): { at: number; line: number } | null {
    if (this.matches.length === 0) return null;
    this.matchAt = (this.matchAt + step + this.matches.length) % this.matches.length;
    const line = this.matches[this.matchAt] ?? 0;
    this.scrollToLine(line + 1);
    return { at: this.matchAt + 1, line: line + 1 };
  }

  /** Scrolls so that line `n` (1-based) is in the middle and marks it; false if it has not arrived yet. */
  scrollToLine(n: number): boolean {
    this.flush();
    const line = n - 1;
    if (line < 0 || line >= this.texts.length) return false;
    const head = this.owner[line] ?? -1;
    if (head >= 0 && head !== line && this.folded.has(head)) this.toggleFold(head);
    this.setFollow(false);
    this.target = line;
    const row = this.rows === null ? line : this.rows.indexOf(line);
    this.setHeight(this.rowCount() * ROW_HEIGHT);
    this.scrollTo(row * ROW_HEIGHT - this.viewport / 2 + ROW_HEIGHT / 2);
    this.gen++;
    this.render();
    return true;
  }

  toggleFold(header: number): void {
    if (!this.headers.has(header)) return;
    if (this.folded.has(header)) this.folded.delete(header);
    else this.folded.add(header);
    this.rebuildRows();
    this.gen++;
    this.render();
  }

  /** Marks the last step header as the one the build failed in (the builder stops at the failing step). */
  markFailedStep(): void {
    this.flush();
    let last = -1;
    for (const h of this.headers) last = Math.max(last, h);
    this.failedStep = last;
    this.gen++;
    this.render();
  }

  /** Folds or unfolds every step at once. */
  foldAll(fold: boolean): void {
    this.flush();
    this.folded.clear();
    if (fold) for (const h of this.headers) this.folded.add(h);
    this.rebuildRows();
    this.gen++;
    this.render();
  }

  private rebuildRows(): void {
    if (this.folded.size === 0) {
      this.rows = null;
      return;
    }
    const rows: number[] = [];
    for (let i = 0; i < this.texts.length; i++) {
      const head = this.owner[i] ?? -1;
      if (head === i || head < 0 || !this.folded.has(head)) rows.push(i);
    }
    this.rows = rows;
  }

  private schedule(): void {
    if (this.frame === 0) this.frame = requestAnimationFrame(this.tick);
  }

  private readonly tick = (): void => {
    this.frame = 0;
    this.flush();
    this.render();
    // lines may also have been moved in by search or a jump (flush outside a frame): compare counts
    if (this.reported !== this.texts.length && this.countTimer === 0) this.reportCount();
  };

  /** Tells the count now, then at most every COUNT_EVERY_MS while it keeps changing (the last change always). */
  private reportCount(): void {
    this.reported = this.texts.length;
    this.events.count(this.reported);
    this.countTimer = window.setTimeout(() => {
      this.countTimer = 0;
      this.flush();
      if (this.reported !== this.texts.length) this.reportCount();
    }, COUNT_EVERY_MS);
  }

  /** Moves queued lines into the arrays (no DOM work). */
  private flush(): void {
    if (this.pending.length === 0) return;
    this.schedule();
    const batches = this.pending;
    this.pending = [];
    this.pendingLines = 0;
    let head = this.texts.length > 0 ? (this.owner[this.texts.length - 1] ?? -1) : -1;
    for (const batch of batches) {
      const { ends, streams, heads } = batch;
      const first = this.texts.length;
      this.texts.push(batch);
      for (let j = 0; j < ends.length; j++) {
        const i = first + j;
        this.streams.push(streams[j] ?? 0);
        if (heads[j] === 1) {
          head = i;
          this.headers.add(i);
        }
        this.owner.push(head);
        if (this.rows !== null && (head === i || head < 0 || !this.folded.has(head))) this.rows.push(i);
        if (this.term !== '' && stripAnsi(this.texts.text(i)).toLowerCase().includes(this.term)) this.matches.push(i);
      }
    }
  }

  /**
   * A scroll of ours, not the user's (onScroll tells them apart by the offset kept here). Only
   * noted: render() writes it, after the rows, so a frame costs one layout, not one per write.
   */
  private scrollTo(top: number): void {
    const clamped = Math.max(0, Math.min(top, this.height - this.viewport));
    if (Math.abs(this.top - clamped) < 1) return;
    this.top = clamped;
    this.scrollDirty = true;
  }

  private setHeight(px: number): void {
    if (px === this.height) return;
    this.height = px;
    this.heightDirty = true;
  }

  private rowCount(): number {
    return this.rows === null ? this.texts.length : this.rows.length;
  }

  private render(): void {
    const total = this.rowCount();
    this.setHeight(total * ROW_HEIGHT);
    if (this.following) this.scrollTo(this.height - this.viewport);
    // folding shrinks the log: the browser will clamp the offset, so draw for where it will be
    else if (this.top > Math.max(0, this.height - this.viewport)) this.scrollTo(this.top);
    const viewport = this.viewport;
    // Following, nothing lies below the end, and the rows above scroll out at once: a flood then
    // draws the viewport only. (Scrolling up stops following, and brings the overscan back.)
    const first = Math.max(0, Math.floor(this.top / ROW_HEIGHT) - (this.following ? 0 : OVERSCAN));
    const last = Math.min(total, Math.ceil((this.top + viewport) / ROW_HEIGHT) + OVERSCAN);
    // Rows are recycled by position (row r is always node r mod pool size), so scrolling by k rows
    // redraws k nodes, not the whole viewport. The pool is as large as the viewport can ever need
    // (any offset), and is rebuilt only when the viewport's height changes.
    const size = Math.ceil(viewport / ROW_HEIGHT) + 1 + 2 * OVERSCAN;
    if (this.pool.length !== size) {
      for (const node of this.pool) node.remove();
      this.pool.length = 0;
      this.shown.length = 0;
      for (let k = 0; k < size; k++) {
        const row = document.createElement('div');
        row.className = 'row';
        row.hidden = true;
        this.pool.push(row);
        this.shown.push({ line: -1, gen: -1 });
      }
      this.scroller.append(...this.pool);
    }
    const used = new Uint8Array(size);
    for (let r = first; r < last; r++) {
      const k = r % size;
      used[k] = 1;
      const line = this.rows === null ? r : (this.rows[r] ?? 0);
      const node = this.pool[k];
      const was = this.shown[k];
      if (node === undefined || was === undefined) continue;
      if (was.line === line && was.gen === this.gen) continue;
      was.line = line;
      was.gen = this.gen;
      node.hidden = false;
      node.style.transform = `translateY(${r * ROW_HEIGHT}px)`;
      this.draw(node, line);
    }
    for (let k = 0; k < size; k++) {
      const node = this.pool[k];
      const was = this.shown[k];
      if (used[k] === 1 || node === undefined || was === undefined || node.hidden) continue;
      // out of range: emptied, so no stale id (#L…), mark or target lingers in the document
      node.hidden = true;
      node.className = 'row';
      node.removeAttribute('id');
      node.replaceChildren();
      was.line = -1;
    }
    // the spacer first: the offset is clamped to the height the browser knows
    if (this.heightDirty) {
      this.heightDirty = false;
      this.spacer.style.height = `${this.height}px`;
    }
    if (this.scrollDirty) {
      this.scrollDirty = false;
      this.scroller.scrollTop = this.top;
    }
  }

  private draw(node: HTMLDivElement, line: number): void {
    const text = this.texts.text(line);
    const n = line + 1;
    node.id = `L${n}`;
    const stream = this.streams[line] ?? 0;
    const isHeader = this.headers.has(line);
    node.className = `row${stream === 1 ? ' stderr' : stream === 2 ? ' system' : ''}${isHeader ? ' step' : ''}${line === this.failedStep ? ' failed-step' : ''}${line === this.target ? ' target' : ''}`;
    // Each row keeps its three children across redraws: a flood redraws every row every frame,
    // and updating text is far cheaper than building elements.
    if (node.childElementCount !== 3) {
      const fold = document.createElement('button');
      fold.className = 'fold';
      fold.type = 'button';
      const ln = document.createElement('a');
      ln.className = 'ln';
      ln.tabIndex = -1;
      const body = document.createElement('span');
      body.className = 'txt';
      node.replaceChildren(fold, ln, body);
    }
    const [fold, ln, body] = node.children as unknown as [HTMLButtonElement, HTMLAnchorElement, HTMLSpanElement];
    if (isHeader) {
      const open = !this.folded.has(line);
      fold.textContent = open ? '▾' : '▸';
      fold.disabled = false;
      fold.tabIndex = 0;
      fold.removeAttribute('aria-hidden');
      fold.setAttribute('aria-expanded', String(open));
      fold.setAttribute('aria-label', `${open ? 'Fold' : 'Unfold'} step at line ${n}${line === this.failedStep ? ' (the step that failed)' : ''}`);
      fold.dataset.fold = String(line);
    } else if (!fold.disabled) {
      fold.textContent = '';
      fold.disabled = true;
      fold.tabIndex = -1;
      fold.setAttribute('aria-hidden', 'true');
      fold.removeAttribute('aria-expanded');
      fold.removeAttribute('aria-label');
      delete fold.dataset.fold;
    }
    ln.href = `#L${n}`;
    ln.textContent = String(n);
    if (this.term === '' && !text.includes('\x1b')) {
      body.textContent = text;
      return;
    }
    body.replaceChildren();
    for (const run of parseAnsi(text)) this.appendRun(body, run.text, run.cls);
  }

  /** One styled run, with the search term wrapped in <mark> (all as text nodes). */
  private appendRun(into: HTMLElement, text: string, cls: string): void {
    const target = cls === '' ? into : into.appendChild(Object.assign(document.createElement('span'), { className: cls }));
    if (this.term === '') {
      target.append(text);
      return;
    }
    const lower = text.toLowerCase();
    let at = 0;
    for (let hit = lower.indexOf(this.term); hit >= 0; hit = lower.indexOf(this.term, at)) {
      if (hit > at) target.append(text.slice(at, hit));
      const mark = document.createElement('mark');
      mark.textContent = text.slice(hit, hit + this.term.length);
      target.append(mark);
      at = hit + this.term.length;
    }
    if (at < text.length) target.append(text.slice(at));
  }

  private readonly onScroll = (): void => {
    const top = this.scroller.scrollTop;
    // at the offset render() set: our own scroll, drawn for already
    if (Math.abs(top - this.top) < 1) return;
    this.top = top;
    const atEnd = top + this.viewport >= this.height - ROW_HEIGHT;
    this.setFollow(atEnd);
    this.render();
  };

  private readonly onClick = (e: MouseEvent): void => {
    const el = e.target instanceof Element ? e.target : null;
    const fold = el?.closest<HTMLElement>('button.fold');
    if (fold?.dataset.fold !== undefined) {
      this.toggleFold(Number(fold.dataset.fold));
      return;
    }
    const ln = el?.closest<HTMLAnchorElement>('a.ln');
    if (ln !== null && ln !== undefined) {
      e.preventDefault();
      history.replaceState(history.state, '', ln.hash);
      this.scrollToLine(Number(ln.hash.slice(2)));
    }
  };
}
