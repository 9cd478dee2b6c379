/**
 * How a failed command ends: an exit code by class of error, and one line on stderr.
 *
 * - 0: success.
 * - 1: the operation was refused or could not be done (no port available, lease lost, queue in
 *   flight, not found, database unreachable, an unexpected failure).
 * - 2: bad usage or bad input (unknown flag, invalid DSN, invalid payload, port, tag, path…);
 *   nothing was changed.
 * - 130: interrupted (SIGINT/SIGTERM) before the command finished.
 *
 * Every line goes through `Dsn.scrub` with the literal secrets of the configuration, so no
 * password or token is ever printed, even in `--verbose` detail. Expected errors never print a
 * stack trace; defects print one only with `--verbose`.
 */
import * as Dsn from "@keel/sql/Dsn"
import { Cause, ConfigError, Data, Option, Predicate } from "effect"
import * as Output from "./Output.js"

/** The exit codes `keel` uses. */
export const ExitCode = { success: 0, refused: 1, usage: 2, interrupted: 130 } as const

/** A command failed and its error has been reported on stderr; the process exits with `exitCode`. */
export class Reported extends Data.TaggedError("Reported")<{ readonly exitCode: number }> {}

/** Bad input the CLI itself found (an unreadable file, a malformed JSON line, a bad service spec). */
export class InvalidInput extends Data.TaggedError("InvalidInput")<{
  /** What held it: `--file`, `stdin line 3`, `service web=x`… */
  readonly source: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.source}: ${this.reason}`
  }
}

/**
 * A command line `@effect/cli` rejected (its `ValidationError`, converted by `Cli.ts` so that this
 * module, which the fast path loads, needs nothing of `@effect/cli`): exit code 2.
 */
export class UsageError extends Data.TaggedError("UsageError")<{
  /** The `ValidationError`'s kind: `InvalidValue`, `MissingFlag`, `CommandMismatch`… */
  readonly kind: string
  /** `@effect/cli`'s explanation, as text. */
  readonly text: string
}> {}

/** Errors that mean "bad usage or bad input": exit code 2. Everything else that fails is 1. */
export const usageErrors: ReadonlySet<string> = new Set([
  "InvalidInput",
  "InvalidDsn",
  // @keel/queue
  "InvalidQueueName",
  "InvalidPayload",
  "PayloadTooLarge",
  "InvalidOption",
  "BatchTooLarge",
  "InvalidSchedule",
  // @keel/reservation
  "InvalidPort",
  "InvalidRange",
  "InvalidTag",
  "InvalidLabel",
  "InvalidPath",
  "InvalidRequest",
  "UnrelatedPath",
  "InvalidConfig",
  // @keel/cursor
  "InvalidPeer",
  "InvalidPosition"
])

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
export const oneLine = (text: string): string => Output.plain(text).replace(/\s+/g, " ").trim()

const ownFields = (error: object): Record<string, unknown> => {
  const fields: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(error)) fields[key] = value
  return fields
}

/** The report of a failure value (an expected error). */
export const describe = (error: unknown): Report => {
  if (error instanceof UsageError) {
    return {
      exitCode: ExitCode.usage,
      tag: "ValidationError",
      message: oneLine(error.text) || "invalid command line",
      detail: { kind: error.kind },
      trace: undefined
    }
  }
  if (ConfigError.isConfigError(error)) {
    return {
      exitCode: ExitCode.usage,
      tag: "ConfigError",
      message: `invalid configuration: ${oneLine(String(error))}`,
      detail: {},
      trace: undefined
    }
  }
  if (Predicate.isTagged(error, "Reported") && Predicate.hasProperty(error, "exitCode")) {
    return {
      exitCode: Number(error.exitCode),
      tag: "Reported",
      message: "",
      detail: {},
      trace: undefined
    }
  }
  if (Predicate.hasProperty(error, "_tag") && typeof error._tag === "string") {
    const message = Predicate.hasProperty(error, "message") ? String(error.message) : error._tag
    return {
      exitCode: usageErrors.has(error._tag) ? ExitCode.usage : ExitCode.refused,
      tag: error._tag,
      message: oneLine(message),
      detail: ownFields(error),
      trace: undefined
    }
  }
  return {
    exitCode: ExitCode.refused,
    tag: "UnknownError",
    message: oneLine(error instanceof Error ? error.message : String(error)),
    detail: {},
    trace: undefined
  }
}

/** The report of a whole `Cause`: its first failure, else its first defect, else an interruption. */
export const describeCause = (cause: Cause.Cause<unknown>): Report => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) return describe(failure.value)
  const defect = Cause.dieOption(cause)
  if (Option.isSome(defect)) {
    const value = defect.value
    return {
      exitCode: ExitCode.refused,
      tag: "Defect",
      message: `unexpected failure: ${oneLine(value instanceof Error ? value.message : String(value))}`,
      detail: {},
      trace: Cause.pretty(cause)
    }
  }
  return {
    exitCode: ExitCode.interrupted,
    tag: "Interrupted",
    message: "interrupted",
    detail: {},
    trace: undefined
  }
}

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

/** The longest run of non-space characters printed as it is (see `shorten`). */
export const longestRun = 512

const longRun = new RegExp(`\\S{${longestRun + 1},}`, "g")

/**
 * `text` with each run of more than `longestRun` non-space characters replaced by its length: a
 * huge argument echoed in an error would flood the terminal, and `Dsn.scrub`'s patterns take time
 * quadratic in a run's length (a 60,000-character argument cost 3 s). No part of such a run is
 * printed, so no part of a secret inside it leaks.
 */
export const shorten = (text: string): string => text.replace(longRun, (run) => `[${run.length} characters]`)

/** `text` fit to print: shortened, then scrubbed of DSN credentials and the literal `secrets`. */
export const redact = (text: string, secrets: ReadonlyArray<string>): string =>
  Dsn.scrub(shorten(text), secrets)

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
