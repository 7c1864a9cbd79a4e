import type { ComponentChildren } from 'preact';

/** One column: its header, and what each row shows in it. */
export interface Column<T> {
  header: string;
  cell(row: T): ComponentChildren;
  /** on the header and every cell: e.g. `wide`, a column a phone's width leaves out */
  class?: string;
  /** on the cells only (e.g. `small` text under a normal header) */
  cellClass?: string;
  /** the cell names its row (`<th scope="row">`), for screen readers moving across a row */
  rowHeader?: boolean;
}

/** Attributes of a row: its `data-*` (what tests and styles select on) and class. */
export type RowAttributes = Record<`data-${string}`, string> & { class?: string };

export interface TableProps<T> {
  rows: readonly T[];
  columns: readonly Column<T>[];
  /** a stable key per row, so a live list updates rows in place */
  rowKey(row: T): string;
  rowAttributes?(row: T): RowAttributes;
  /** the table's class (per-table styles) */
  class?: string;
  /** for screen readers only, where the heading above does not already say what the table lists */
  caption?: ComponentChildren;
}

/**
 * The console's one table: a horizontally scrollable wrapper (a phone's width), column headers
 * with their scope, and rows keyed for in-place updates. Every list page and the gates use it.
 */
export function Table<T>({ rows, columns, rowKey, rowAttributes, class: cls, caption }: TableProps<T>) {
  return (
    <div class="table-wrap">
      <table class={cls}>
        {caption !== undefined && <caption class="sr-only">{caption}</caption>}
        <thead>
          <tr>
            {columns.map((c) => (
              <th scope="col" class={c.class}>
                {c.header}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <tr key={rowKey(row)} {...rowAttributes?.(row)}>
              {columns.map((c) => {
                const cls = [c.class, c.cellClass].filter((x) => x !== undefined).join(' ') || undefined;
                return c.rowHeader === true ? (
                  <th scope="row" class={cls}>
                    {c.cell(row)}
                  </th>
                ) : (
                  <td class={cls}>{c.cell(row)}</td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
