/**
 * How `keel` logs. Commands log on stderr (stdout carries only results), one line per event,
 * secrets redacted: `keel: <level>: <message>` by default, logfmt with `KEEL_LOG_FORMAT=logfmt`,
 * one JSON object with `KEEL_LOG_FORMAT=json` (logfmt and JSON carry `traceId`/`spanId` when the
 * event is inside a span). The minimum level is `--log-level`, given anywhere on the command line,
 * else `KEEL_LOG_LEVEL`, else warning. `keel serve` logs through the server's logger (stdout,
 * logfmt by default, info by default), which reads the same two settings.
 */
import * as ServerLog from "@keel/server/Log"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberRef from "effect/FiberRef"
import * as FiberRefs from "effect/FiberRefs"
import * as HashSet from "effect/HashSet"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Failure from "./Failure.js"
import * as Output from "./Output.js"

/** How log lines are written: keel's one-line text, logfmt, or JSON. */
export type Format = "text" | ServerLog.Format

/** The logging of one invocation. */
export interface Settings {
  readonly level: LogLevel.LogLevel
  readonly format: Format
}

/** `KEEL_LOG_LEVEL` (default warning) and `KEEL_LOG_FORMAT` (default keel's text line). */
export const settings: Config.Config<Settings> = Config.all({
  level: Config.withDefault(ServerLog.level("KEEL_LOG_LEVEL"), LogLevel.Warning),
  format: Config.withDefault<Format, Format>(ServerLog.format("KEEL_LOG_FORMAT"), "text")
})

/** A command line with `--log-level` taken out, and the level it named. */
export interface LevelFlag {
  readonly argv: ReadonlyArray<string>
  readonly level: Option.Option<LogLevel.LogLevel>
}

const flag = "--log-level"

const invalidLevel = (value: string | undefined) =>
  new Failure.InvalidInput({
    source: flag,
    reason:
      value === undefined
        ? `needs a level: ${ServerLog.levelNames.join(", ")}`
        : `expected one of ${ServerLog.levelNames.join(", ")}, got ${JSON.stringify(value)}`
  })

/**
 * Takes `--log-level LEVEL` and `--log-level=LEVEL` out of `argv` (as `process.argv`), wherever
 * they are before a `--`; the last one wins. `@effect/cli` knows the flag only where it can parse
 * it as a built-in (alone after a command), lists it in every command's help and would still leave
 * the server's level as it was; taken out here, it works wherever help shows it.
 */
export const takeLevelFlag = (
  argv: ReadonlyArray<string>
): Either.Either<LevelFlag, Failure.InvalidInput> => {
  const kept: Array<string> = []
  let level = Option.none<LogLevel.LogLevel>()
  const args = argv.slice(2)
  for (let index = 0; index < args.length; index++) {
    const arg = args[index] ?? ""
    if (arg === "--") {
      kept.push(...args.slice(index))
      break
    }
    let value: string | undefined
    if (arg === flag) {
      index++
      value = args[index]
    } else if (arg.startsWith(`${flag}=`)) {
      value = arg.slice(flag.length + 1)
    } else {
      kept.push(arg)
      continue
    }
    const parsed = value === undefined ? Option.none() : ServerLog.parseLevel(value)
    if (Option.isNone(parsed)) return Either.left(invalidLevel(value))
    level = parsed
  }
  return Either.right({ argv: [...argv.slice(0, 2), ...kept], level })
}

/**
 * `effect` with the `--log-level` level as `KEEL_LOG_LEVEL`, over the configuration in force: the
 * flag wins wherever the level is read (keel's own logging, `keel serve`'s server).
 */
export const withLevelFlag =
  (level: Option.Option<LogLevel.LogLevel>) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Option.match(level, {
      onNone: () => effect,
      onSome: (given) =>
        Effect.configProviderWith((current) =>
          Effect.withConfigProvider(
            effect,
            ConfigProvider.orElse(
              ConfigProvider.fromMap(new Map([["KEEL_LOG_LEVEL", given.label]])),
              () => current
            )
          )
        )
    })

const bare = /^[^\s"=]*$/

const logfmtValue = (value: unknown): string => {
  const text = typeof value === "string" ? value : (JSON.stringify(value) ?? String(value))
  return bare.test(text) ? text : JSON.stringify(text)
}

/** A JSON log record (`ServerLog.json`'s fields) as logfmt, in the order Effect's logfmt uses. */
const logfmt = (record: Readonly<Record<string, unknown>>): string => {
  const pairs: Array<string> = [
    `timestamp=${logfmtValue(record.timestamp)}`,
    `level=${logfmtValue(record.logLevel)}`,
    `fiber=${logfmtValue(record.fiberId)}`
  ]
  const messages = Array.isArray(record.message) ? record.message : [record.message]
  for (const message of messages) pairs.push(`message=${logfmtValue(message)}`)
  if (record.cause !== undefined) pairs.push(`cause=${logfmtValue(record.cause)}`)
  const nested = (value: unknown): ReadonlyArray<readonly [string, unknown]> =>
    typeof value === "object" && value !== null ? Object.entries(value) : []
  for (const [label, ms] of nested(record.spans)) pairs.push(`${label}=${logfmtValue(`${String(ms)}ms`)}`)
  for (const [key, value] of nested(record.annotations)) pairs.push(`${key}=${logfmtValue(value)}`)
  for (const key of ["traceId", "spanId"]) {
    if (record[key] !== undefined) pairs.push(`${key}=${logfmtValue(record[key])}`)
  }
  return pairs.join(" ")
}

const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** keel's text line: `keel: <level>: <message> (<cause>)`. */
const text = (options: Logger.Logger.Options<unknown>, secrets: ReadonlyArray<string>): string => {
  const { logLevel, message, cause } = options
  const parts = (Array.isArray(message) ? message : [message]).map((part) =>
    typeof part === "string" ? part : Failure.oneLine(JSON.stringify(part) ?? String(part))
  )
  const reason = Cause.isEmpty(cause) ? "" : ` (${Failure.oneLine(Cause.pretty(cause)).slice(0, 2000)})`
  return `keel: ${logLevel.label.toLowerCase()}: ${Failure.oneLine(Failure.redact(parts.join(" ") + reason, secrets))}`
}

/**
 * The logger of `format`: each event one line on the running command's stderr (`Output.Streams`),
 * every string in it scrubbed of secrets before it is formatted (so a quote or a long run inside a
 * value cannot break the line's syntax).
 */
export const logger = (format: Format): Logger.Logger<unknown, void> =>
  Logger.make((options) => {
    const secrets = Failure.secretsOf(undefined, process.env)
    const streams = Context.get(
      FiberRefs.getOrDefault(options.context, FiberRef.currentContext),
      Output.Streams
    )
    if (format === "text") {
      streams.stderr(`${text(options, secrets)}\n`)
      return
    }
    const record: unknown = JSON.parse(ServerLog.json.log(options))
    const redacted = Failure.redactedData(record, secrets)
    const data = isRecord(redacted) ? redacted : { message: redacted }
    streams.stderr(`${format === "json" ? JSON.stringify(data) : logfmt(data)}\n`)
  })

/**
 * `effect` logging with `settings`: `logger` in place of Effect's default (and pretty) logger, at
 * the settings' minimum level.
 */
export const withSettings =
  (settings: Settings) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    effect.pipe(
      Effect.locallyWith(FiberRef.currentLoggers, (loggers) =>
        HashSet.add(
          HashSet.filter(
            loggers,
            (current) => current !== Logger.defaultLogger && current !== Logger.prettyLoggerDefault
          ),
          logger(settings.format)
        )
      ),
      Logger.withMinimumLogLevel(settings.level)
    )
