/**
 * keel's logging pieces: `--log-level` taken out of any position of a command line (never after
 * `--`), and the stderr logger's formats — secrets scrubbed from every value, the trace of the
 * span an event is logged in on JSON and logfmt lines.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, LogLevel, Option } from "effect"
import * as Log from "../src/Log.js"
import * as Output from "../src/Output.js"

const taken = (args: ReadonlyArray<string>) => Log.takeLevelFlag(["node", "keel", ...args])

describe("--log-level", () => {
  it("is taken out wherever it is before --, the last one winning; the rest stays in order", () => {
    expect(taken(["--log-level", "debug", "port", "list", "--json"])).toEqual(
      Either.right({ argv: ["node", "keel", "port", "list", "--json"], level: Option.some(LogLevel.Debug) })
    )
    expect(taken(["port", "--log-level=warn", "list", "--log-level", "ERROR"])).toEqual(
      Either.right({ argv: ["node", "keel", "port", "list"], level: Option.some(LogLevel.Error) })
    )
    expect(taken(["queue", "consume", "jobs", "--", "tool", "--log-level", "x"])).toEqual(
      Either.right({
        argv: ["node", "keel", "queue", "consume", "jobs", "--", "tool", "--log-level", "x"],
        level: Option.none()
      })
    )
  })

  it("a missing or unknown level is bad input naming the flag and the levels", () => {
    for (const args of [["--log-level"], ["port", "list", "--log-level", "loud"], ["--log-level="]]) {
      const result = taken(args)
      expect(Either.isLeft(result), args.join(" ")).toBe(true)
      if (Either.isLeft(result)) {
        expect(result.left.message).toMatch(
          /^--log-level: .*all, trace, debug, info, warning, error, fatal, none/
        )
      }
    }
  })
})

/** What `logger(format)` writes to stderr for `effect`'s events. */
const logged = <A, E>(format: Log.Format, effect: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    let stderr = ""
    const streams: Output.Writers = {
      stdout: () => undefined,
      stderr: (text) => {
        stderr += text
      },
      stdoutIsTerminal: () => false
    }
    const value = yield* effect.pipe(
      Log.withSettings({ level: LogLevel.Info, format }),
      Effect.provideService(Output.Streams, streams)
    )
    return { value, lines: stderr.split("\n").slice(0, -1), ends: stderr.endsWith("\n") }
  })

const secretDsn = "postgres://keel:Sup3r-S3cret-pw@db.example/keel"

describe("keel's logger", () => {
  it.effect("json: one redacted object per line, with the ids of the span it is logged in", () =>
    Effect.gen(function* () {
      const {
        value: span,
        lines,
        ends
      } = yield* logged(
        "json",
        Effect.zipLeft(
          Effect.currentSpan,
          Effect.logWarning(`cannot reach ${secretDsn}`, "line\nbreak").pipe(
            Effect.annotateLogs({ dsn: secretDsn })
          )
        ).pipe(Effect.withSpan("queue.consume"))
      )
      expect(ends).toBe(true)
      expect(lines).toHaveLength(1)
      expect(lines.join("")).not.toContain("Sup3r-S3cret-pw")
      expect(JSON.parse(lines[0] ?? "")).toMatchObject({
        message: [expect.stringContaining("cannot reach postgres://keel:***@db.example/keel"), "line\nbreak"],
        logLevel: "WARN",
        annotations: { dsn: expect.stringContaining("***") },
        traceId: span.traceId,
        spanId: span.spanId
      })
    })
  )

  it.effect("logfmt and text: one line each; only logfmt carries the trace; debug is below info", () =>
    Effect.gen(function* () {
      const event = Effect.zipRight(Effect.logDebug("hidden"), Effect.logError("flush failed", secretDsn))
      const logfmt = yield* logged(
        "logfmt",
        Effect.withSpan(Effect.zipLeft(Effect.currentSpan, event), "flush")
      )
      expect(logfmt.lines).toHaveLength(1)
      expect(logfmt.lines[0]).toMatch(
        /^timestamp=\S+ level=ERROR fiber=\S+ message="flush failed" message=postgres:\/\/keel:\*\*\*@db.example\/keel /
      )
      expect(logfmt.lines[0]).toContain(`traceId=${logfmt.value.traceId} spanId=${logfmt.value.spanId}`)
      const text = yield* logged("text", Effect.withSpan(event, "flush"))
      expect(text.lines).toEqual(["keel: error: flush failed postgres://keel:***@db.example/keel"])
    })
  )
})
