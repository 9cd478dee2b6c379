/**
 * How Keel logs: the level and format settings (`KEEL_LOG_LEVEL`, `KEEL_LOG_FORMAT`), Effect's
 * logfmt and JSON loggers with the trace of the current span on each line, and the server's
 * output — lines written to stdout in batches, one write per turn of the event loop, instead of
 * one synchronous write per line (at thousands of requests a second, the per-line write was ~7% of
 * the server's CPU). Lines keep their order; what is pending is written before the process exits.
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Either from "effect/Either"
import * as FiberRef from "effect/FiberRef"
import * as FiberRefs from "effect/FiberRefs"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"

/** How log lines are written: `key=value` pairs (logfmt), or one JSON object per line. */
export type Format = "logfmt" | "json"

/** `KEEL_LOG_FORMAT` (or another variable): `logfmt` or `json`. */
export const format = (name: string): Config.Config<Format> => Config.literal("logfmt", "json")(name)

/**
 * The names a log level is given by: Effect's labels (`warn`, `off`) and the names `@effect/cli`'s
 * `--log-level` lists (`warning`, `none`), any case. Both spellings are in use, and a variable
 * refusing the one its own command's `--help` shows would be a trap.
 */
const levelsByName: ReadonlyMap<string, LogLevel.LogLevel> = new Map(
  LogLevel.allLevels.flatMap((level) => [
    [level.label.toLowerCase(), level] as const,
    [level._tag.toLowerCase(), level] as const
  ])
)

/** The level names `--log-level` accepts, in order, for messages. */
export const levelNames: ReadonlyArray<string> = LogLevel.allLevels.map((level) => level._tag.toLowerCase())

/** The log level named by `text` (see `levelsByName`), if any. */
export const parseLevel = (text: string): Option.Option<LogLevel.LogLevel> =>
  Option.fromNullable(levelsByName.get(text.trim().toLowerCase()))

/** A log level variable (`KEEL_LOG_LEVEL`): `trace`, `debug`, `info`, `warning` (or `warn`), `error`, … */
export const level = (name: string): Config.Config<LogLevel.LogLevel> =>
  Config.nested(
    Config.mapOrFail(Config.string(), (text) =>
      Either.fromOption(parseLevel(text), () =>
        ConfigError.InvalidData(
          [],
          `Expected a log level (${levelNames.join(", ")}) but received ${JSON.stringify(text)}`
        )
      )
    ),
    name
  )

/** The trace and span a log event was emitted in. */
export interface Trace {
  readonly traceId: string
  readonly spanId: string
}

/**
 * The span the logging fiber runs in (Effect's tracer, or an external parent span), if any: a
 * lookup in the fiber's context, cheap enough for every line. Absent outside any span.
 */
export const traceOf = (context: FiberRefs.FiberRefs): Trace | undefined => {
  const span = Context.getOption(FiberRefs.getOrDefault(context, FiberRef.currentContext), Tracer.ParentSpan)
  return Option.isSome(span) ? { traceId: span.value.traceId, spanId: span.value.spanId } : undefined
}

const bare = /^[^\s"=]*$/

/** A logfmt value: as it is when it needs no quotes, else a JSON string (what Effect's logfmt does). */
const logfmtValue = (value: string): string => (bare.test(value) ? value : JSON.stringify(value))

/**
 * Effect's JSON logger (one object per line: `message`, `logLevel`, `timestamp`, `cause`,
 * `annotations`, `spans`, `fiberId`) with `traceId` and `spanId` when the event is inside a span.
 */
export const json: Logger.Logger<unknown, string> = Logger.make((options) => {
  const line = Logger.jsonLogger.log(options)
  const trace = traceOf(options.context)
  return trace === undefined
    ? line
    : `${line.slice(0, -1)},"traceId":${JSON.stringify(trace.traceId)},"spanId":${JSON.stringify(trace.spanId)}}`
})

/** Effect's logfmt logger with `traceId=… spanId=…` at the end when the event is inside a span. */
export const logfmt: Logger.Logger<unknown, string> = Logger.make((options) => {
  const line = Logger.logfmtLogger.log(options)
  const trace = traceOf(options.context)
  return trace === undefined
    ? line
    : `${line} traceId=${logfmtValue(trace.traceId)} spanId=${logfmtValue(trace.spanId)}`
})

/** The line formatter for `format`. */
export const formatter = (format: Format): Logger.Logger<unknown, string> =>
  format === "json" ? json : logfmt

let pending: Array<string> = []
let scheduled = false
let hooked = false

const flush = () => {
  scheduled = false
  if (pending.length === 0) return
  const text = pending.join("")
  pending = []
  process.stdout.write(text)
}

/** `format`'s lines, written to stdout in batches. */
export const batched = <Message>(format: Logger.Logger<Message, string>): Logger.Logger<Message, void> =>
  Logger.map(format, (line) => {
    pending.push(`${line}\n`)
    if (!hooked) {
      hooked = true
      process.on("exit", flush)
    }
    if (!scheduled) {
      scheduled = true
      setImmediate(flush)
    }
  })
