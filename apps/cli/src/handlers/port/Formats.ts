/**
 * Output formats of `keel port`: shell exports and dotenv files that quote every value so that no
 * path or tag can run code when the output is `eval`ed or sourced, and CSV/TSV whose cells cannot
 * forge a row or a column.
 */

/** The shells `--shell` knows. */
export type Shell = "bash" | "zsh" | "sh" | "fish"

/** POSIX single quoting: everything literal; a `'` closes, escapes and reopens. */
export const posixQuote = (value: string): string => `'${value.replaceAll("'", `'\\''`)}'`

/** fish single quoting: only `\` and `'` are special inside. */
export const fishQuote = (value: string): string =>
  `'${value.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`

/** One `export NAME='value'` (or fish's `set -gx`) line; `name` must already be a valid variable name. */
export const exportLine = (shell: Shell, name: string, value: string): string =>
  shell === "fish" ? `set -gx ${name} ${fishQuote(value)}` : `export ${name}=${posixQuote(value)}`

/**
 * One dotenv line: single-quoted when the value has no `'` or line break (read literally by every
 * dotenv reader), otherwise double-quoted with `\`, `"`, `$`, backquote and line breaks escaped.
 */
export const dotenvLine = (name: string, value: string): string => {
  if (!/['\r\n]/.test(value)) return `${name}='${value}'`
  const escaped = value
    .replaceAll("\\", "\\\\")
    .replaceAll('"', '\\"')
    .replaceAll("$", "\\$")
    .replaceAll("`", "\\`")
    .replaceAll("\n", "\\n")
    .replaceAll("\r", "\\r")
  return `${name}="${escaped}"`
}

/** A CSV cell (RFC 4180): quoted when it holds a comma, a quote or a line break. */
export const csvCell = (value: string): string =>
  /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value

/** A TSV cell: tabs, line breaks and backslashes escaped (`\t`, `\n`, `\r`, `\\`). */
export const tsvCell = (value: string): string =>
  value.replaceAll("\\", "\\\\").replaceAll("\t", "\\t").replaceAll("\n", "\\n").replaceAll("\r", "\\r")

/** Rows as CSV or TSV text with a header line. */
export const delimited = (
  format: "csv" | "tsv",
  headers: ReadonlyArray<string>,
  rows: ReadonlyArray<ReadonlyArray<string>>
): string => {
  const cell = format === "csv" ? csvCell : tsvCell
  const separator = format === "csv" ? "," : "\t"
  return [headers, ...rows].map((row) => row.map(cell).join(separator)).join("\n")
}
