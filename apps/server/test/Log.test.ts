/**
 * The server's log formats and settings: a JSON line or a logfmt line per event, carrying the
 * trace and span ids when the event is inside a span and nothing of the kind outside one; the
 * log level variable takes both spellings `--log-level` and Effect use.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Logger, LogLevel, Option } from "effect"
import * as Log from "../src/Log.js"

/** The lines `format` writes for `effect`'s log events. */
const lines = <A, E>(format: Logger.Logger<unknown, string>, effect: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const written: Array<string> = []
    const capture = Logger.map(format, (line) => {
      written.push(line)
    })
    yield* effect.pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
    return written
  })

const event = Effect.logInfo("GET /queues 200").pipe(Effect.annotateLogs({ status: 200 }))

describe("log lines", () => {
  it.effect("JSON: one object per line, with traceId and spanId inside a span and neither outside", () =>
    Effect.gen(function* () {
      const inSpan = yield* lines(Log.json, Effect.zipRight(event, event).pipe(Effect.withSpan("queue.send")))
      expect(inSpan).toHaveLength(2)
      for (const line of inSpan) {
        expect(line).not.toContain("\n")
        const record = JSON.parse(line)
        expect(record).toMatchObject({
          message: "GET /queues 200",
          logLevel: "INFO",
          annotations: { status: 200 },
          traceId: expect.stringMatching(/^[0-9a-f]{32}$/),
          spanId: expect.stringMatching(/^[0-9a-f]{16}$/)
        })
      }
      const outside = yield* lines(Log.json, event)
      expect(outside).toHaveLength(1)
      const record = JSON.parse(outside[0] ?? "")
      expect(record).toMatchObject({ message: "GET /queues 200", logLevel: "INFO" })
      expect(record).not.toHaveProperty("traceId")
      expect(record).not.toHaveProperty("spanId")
    })
  )

  it.effect("the ids are those of the span the event is logged in", () =>
    Effect.gen(function* () {
      const written: Array<string> = []
      const capture = Logger.map(Log.json, (line) => {
        written.push(line)
      })
      const span = yield* Effect.zipLeft(Effect.currentSpan, Effect.logWarning("lease lost")).pipe(
        Effect.withSpan("queue.ack"),
        Effect.provide(Logger.replace(Logger.defaultLogger, capture))
      )
      expect(JSON.parse(written[0] ?? "")).toMatchObject({ traceId: span.traceId, spanId: span.spanId })
    })
  )

  it.effect("logfmt: traceId and spanId pairs at the end inside a span, none outside", () =>
    Effect.gen(function* () {
      const written: Array<string> = []
      const capture = Logger.map(Log.logfmt, (line) => {
        written.push(line)
      })
      const span = yield* Effect.zipLeft(Effect.currentSpan, event).pipe(
        Effect.withSpan("http"),
        Effect.provide(Logger.replace(Logger.defaultLogger, capture))
      )
      expect(written[0]).toMatch(/^timestamp=\S+ level=INFO fiber=\S+ message="GET \/queues 200" status=200 /)
      expect(written[0]?.endsWith(` traceId=${span.traceId} spanId=${span.spanId}`)).toBe(true)
      const outside = yield* lines(Log.logfmt, event)
      expect(outside[0]).not.toContain("traceId")
    })
  )
})

describe("log settings", () => {
  const read = (value: string) =>
    Effect.option(
      Effect.withConfigProvider(
        Log.level("KEEL_LOG_LEVEL"),
        ConfigProvider.fromMap(new Map([["KEEL_LOG_LEVEL", value]]))
      )
    )

  it.effect("KEEL_LOG_LEVEL takes --log-level's names and Effect's labels, any case", () =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<readonly [string, LogLevel.LogLevel]> = [
        ["warning", LogLevel.Warning],
        ["WARN", LogLevel.Warning],
        ["none", LogLevel.None],
        ["off", LogLevel.None],
        ["Debug", LogLevel.Debug],
        ["all", LogLevel.All],
        [" info ", LogLevel.Info]
      ]
      for (const [value, level] of cases) expect(yield* read(value), value).toEqual(Option.some(level))
      expect(yield* read("loud")).toEqual(Option.none())
      const error = yield* Effect.flip(
        Effect.withConfigProvider(
          Log.level("KEEL_LOG_LEVEL"),
          ConfigProvider.fromMap(new Map([["KEEL_LOG_LEVEL", "loud"]]))
        )
      )
      expect(String(error)).toContain("KEEL_LOG_LEVEL")
      expect(String(error)).toContain("Expected a log level (all, trace, debug, info, warning")
    })
  )
})
