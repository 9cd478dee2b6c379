/**
 * The text of an error line, with no dependency on Effect: a `Report` rendered as `keel: <message>`
 * (or one `--json` document), every string scrubbed of the DSN's credentials and the configured
 * secrets. `Failure` re-exports all of it; the entry point (`main.ts`) uses it directly to answer an
 * unknown option of `port reserve` before it loads anything else.
 */
import { scrub } from "@keel/sql/Scrub"

const ansi = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*[A-Za-z]`, "g")

/** `text` without ANSI escape sequences (colours, bold). */
export const plain = (text: string): string => text.replace(ansi, "")

/** The exit codes `keel` uses. */
export const ExitCode = { success: 0, refused: 1, usage: 2, interrupted: 130 } as const

/** What to print about a failure. */
export interface Report {
  readonly exitCode: number
  /** The error's tag (`NoPortAvailable`, `ValidationError`, `Defect`…). */
  readonly tag: string
  /** One line for humans. */
  readonly message: string
  /** The full detail, printed with `--verbose` (and as fields of the `--json` error document). */
  readonly detail: Readonly<Record<string, unknown>>
  /** A stack trace, for defects only; printed only with `--verbose`. */
  readonly trace: string | undefined
}

/** Text as one line: ANSI styling removed, runs of whitespace (newlines included) collapsed. */
export const oneLine = (text: string): string => plain(text).replace(/\s+/g, " ").trim()

const secretParameter = /^(password|pass|pwd|secret|token|auth_?token|authtoken|api_?key|key|sslpassword)$/i

/**
 * The literal secrets to scrub from every line: the DSN's password and secret query parameters
 * (raw and URL-decoded), and the tokens of the environment.
 */
export const secretsOf = (
  dsn: string | undefined,
  env: Readonly<Record<string, string | undefined>>
): ReadonlyArray<string> => {
  const secrets: Array<string> = []
  const add = (value: string | undefined | null) => {
    if (value === undefined || value === null || value === "") return
    secrets.push(value)
    try {
      const decoded = decodeURIComponent(value)
      if (decoded !== value) secrets.push(decoded)
    } catch {
      // not URL-encoded: the raw value is enough
    }
  }
  for (const text of [dsn, env.KEEL_DB]) {
    if (text === undefined) continue
    try {
      const url = new URL(text)
      add(url.password)
      for (const [name, value] of url.searchParams) if (secretParameter.test(name)) add(value)
    } catch {
      // not a URL: scrub's patterns cover `user:secret@host` and `password=` forms
    }
  }
  add(env.LIBSQL_AUTH_TOKEN)
  add(env.KEEL_TOKEN)
  add(env.PGPASSWORD)
  return secrets
}

/**
 * `text` fit to print: scrubbed of DSN credentials and the literal `secrets` (`scrub` first
 * replaces every run of more than `maxTokenLength` non-space characters by its length, so a huge
 * argument echoed in an error neither floods the terminal nor leaks a part of a secret inside it).
 */
export const redact = (text: string, secrets: ReadonlyArray<string>): string => scrub(text, secrets)

/** How to print a report. */
export interface RenderOptions {
  readonly json: boolean
  readonly verbose: boolean
  readonly secrets: ReadonlyArray<string>
}

const jsonReplacer = (_key: string, value: unknown): unknown =>
  typeof value === "bigint" ? value.toString() : value

/** `value` as JSON data (as `JSON.stringify` sees it) with every string redacted. */
const redactData = (value: unknown, secrets: ReadonlyArray<string>): unknown => {
  if (typeof value === "string") return redact(value, secrets)
  if (Array.isArray(value)) return value.map((item) => redactData(item, secrets))
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, redactData(item, secrets)]))
  }
  return value
}

/**
 * `value` as plain JSON data (what `JSON.stringify` keeps of it, bigints as strings) with every
 * string in it redacted. Keys are field names, never secrets.
 */
export const redactedData = (value: unknown, secrets: ReadonlyArray<string>): unknown =>
  redactData(JSON.parse(JSON.stringify(value, jsonReplacer) ?? "null"), secrets)

/**
 * `value` as JSON text with every string in it redacted before it is escaped (a secret with a
 * quote or a backslash in it is still found). The text as a whole is not scrubbed again: a long
 * list of ids would be one run of thousands of characters.
 */
const redactedJson = (value: unknown, secrets: ReadonlyArray<string>, indent?: number): string =>
  JSON.stringify(redactedData(value, secrets), null, indent)

/**
 * The text written to stderr for a report: `keel: <message>` on one line (or, with `--json`, one
 * JSON line `{"error":{…},"exitCode":n}`), then with `--verbose` the detail and any trace.
 */
export const render = (report: Report, options: RenderOptions): string => {
  const clean = (text: string) => redact(text, options.secrets)
  if (options.json) {
    const document = {
      error: { ...report.detail, _tag: report.tag, message: report.message },
      exitCode: report.exitCode
    }
    const line = redactedJson(document, options.secrets)
    return options.verbose && report.trace !== undefined ? `${line}\n${clean(report.trace)}\n` : `${line}\n`
  }
  const lines = [`keel: ${clean(report.message)}`]
  if (options.verbose) {
    if (Object.keys(report.detail).length > 0) {
      lines.push(redactedJson({ _tag: report.tag, ...report.detail }, options.secrets, 2))
    }
    if (report.trace !== undefined) lines.push(clean(report.trace))
  }
  return `${lines.join("\n")}\n`
}

/** The report of a usage error `@effect/cli` (or the fast path, in its words) found: exit code 2. */
export const usageReport = (kind: string, text: string): Report => ({
  exitCode: ExitCode.usage,
  tag: "ValidationError",
  message: oneLine(text) || "invalid command line",
  detail: { kind },
  trace: undefined
})

/**
 * The error line `Invocation.run` writes for `report` on the command line `argv` (as
 * `process.argv`): `--json` and `--verbose` anywhere in it choose the form, the secrets are the
 * `--db` value's and the environment's.
 */
export const lineFor = (
  report: Report,
  argv: ReadonlyArray<string>,
  env: Readonly<Record<string, string | undefined>>
): string =>
  render(report, {
    json: argv.includes("--json"),
    verbose: argv.includes("--verbose"),
    secrets: secretsOf(rawDb(argv), env)
  })

/** The value of `--db` in raw arguments (for redacting a usage error that echoes it). */
export const rawDb = (argv: ReadonlyArray<string>): string | undefined => {
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index] ?? ""
    if (arg === "--db") return argv[index + 1]
    if (arg.startsWith("--db=")) return arg.slice("--db=".length)
  }
  return undefined
}
