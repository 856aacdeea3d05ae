/**
 * Plain-text output for the CLI: aligned tables and key/value records.
 *
 *   formatTable(["ID", "STATE"], [["a", "active"], ["long-id", "paused"]])
 *   →  ID       STATE
 *      a        active
 *      long-id  paused
 *
 * Columns are separated by two spaces and padded to the widest cell (measured in code points);
 * the last column is not padded, so lines carry no trailing spaces. Cells are made single-line
 * (control characters become spaces) and cut to `maxCellWidth` with an ellipsis, so a value from
 * the server can never break the layout or write escape sequences to the terminal.
 */

export interface TableOptions {
  /** Longest cell, in code points; longer cells end in "…". Default 60. */
  maxCellWidth?: number;
}

const GAP = "  ";

/** One line of printable text: control characters (newlines, tabs, ESC, …) become spaces. */
export function cleanCell(value: string, maxWidth = Infinity): string {
  // eslint-disable-next-line no-control-regex
  const clean = value.replace(/[\u0000-\u001f\u007f-\u009f]/g, " ");
  const chars = Array.from(clean);
  if (chars.length <= maxWidth) return clean;
  return chars.slice(0, Math.max(0, maxWidth - 1)).join("") + "…";
}

function width(s: string): number {
  return Array.from(s).length;
}

function pad(s: string, to: number): string {
  return s + " ".repeat(Math.max(0, to - width(s)));
}

/** Header and rows as aligned lines, each ending in "\n". A row shorter than the header is padded with empty cells. */
export function formatTable(headers: string[], rows: string[][], options: TableOptions = {}): string {
  const max = options.maxCellWidth ?? 60;
  const all = [headers, ...rows].map((row) => headers.map((_, i) => cleanCell(row[i] ?? "", max)));
  const widths = headers.map((_, i) => Math.max(...all.map((row) => width(row[i]!))));
  return all
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : pad(cell, widths[i]!)))
        .join(GAP)
        .trimEnd(),
    )
    .map((line) => line + "\n")
    .join("");
}

/**
 * Key/value lines for one object: `key  value`, keys padded to the longest. Pairs whose value is
 * undefined are left out; values may be longer than table cells (`maxValueWidth`, default 200).
 */
export function formatRecord(pairs: Array<[string, string | undefined]>, maxValueWidth = 200): string {
  const present = pairs.filter((p): p is [string, string] => p[1] !== undefined);
  const keyWidth = Math.max(0, ...present.map(([k]) => width(k)));
  return present.map(([k, v]) => `${pad(k, keyWidth)}${GAP}${cleanCell(v, maxValueWidth)}`.trimEnd() + "\n").join("");
}
