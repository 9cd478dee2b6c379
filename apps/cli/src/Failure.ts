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
 * Every line goes through `Scrub.scrub` (`ErrorLine.ts`) with the literal secrets of the configuration, so no
 * password or token is ever printed, even in `--verbose` detail. Expected errors never print a
 * stack trace; defects print one only with `--verbose`.
 */
import * as Cause from "effect/Cause"
import * as ConfigError from "effect/ConfigError"
import * as Data from "effect/Data"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import { ExitCode, oneLine, type Report, usageReport } from "./ErrorLine.js"

export {
  ExitCode,
  oneLine,
  type RenderOptions,
  type Report,
  redact,
  redactedData,
  render,
  secretsOf
} from "./ErrorLine.js"

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

const ownFields = (error: object): Record<string, unknown> => {
  const fields: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(error)) fields[key] = value
  return fields
}

/** The report of a failure value (an expected error). */
export const describe = (error: unknown): Report => {
  if (error instanceof UsageError) return usageReport(error.kind, error.text)
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
