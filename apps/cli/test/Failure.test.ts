import { readFileSync } from "node:fs"
import { describe, expect, it } from "@effect/vitest"
import { QueueError, Schemas } from "@keel/queue"
import { ReservationError } from "@keel/reservation"
import { DbError, Dsn } from "@keel/sql"
import { Cause, ConfigError, Effect, Either, FastCheck, Schema } from "effect"
import * as Failure from "../src/Failure.js"
import * as Output from "../src/Output.js"
import * as Parse from "../src/Parse.js"
import { version } from "../src/Version.js"

describe("exit codes", () => {
  it("domain refusals exit 1", () => {
    const refusals = [
      new ReservationError.NoPortAvailable({
        path: "/p",
        tag: "web",
        range: { min: 1, max: 2 },
        requested: 1
      }),
      new QueueError.LeaseLost({ queue: "jobs", messageIds: [1] }),
      new QueueError.QueueInFlight({ queue: "jobs", inFlight: 2 }),
      new QueueError.QueueNotFound({ queue: "jobs" }),
      new ReservationError.ReservationNotFound({ port: 5000 }),
      new DbError.ConnectionLost({ code: "ECONNREFUSED", message: "connect ECONNREFUSED" })
    ]
    for (const error of refusals) expect(Failure.describe(error).exitCode, error._tag).toBe(1)
  })

  it("bad input and bad usage exit 2", () => {
    const usage = [
      new QueueError.InvalidPayload({ reason: "not JSON" }),
      new QueueError.InvalidQueueName({ name: "A", reason: "uppercase" }),
      new QueueError.InvalidOption({ option: "qty", value: "0", expected: "1-10000" }),
      new ReservationError.InvalidPort({ field: "preferred", value: "70000" }),
      new ReservationError.InvalidPath({ field: "path", path: "x", problem: "relative" }),
      new Dsn.InvalidDsn({ scheme: "nope", reason: "unknown scheme", dsn: "nope:x" }),
      new Failure.InvalidInput({ source: "stdin line 2", reason: "not JSON" }),
      ConfigError.InvalidData(["KEEL_QUEUE_MAX_DELIVERIES"], "Expected an integer")
    ]
    for (const error of usage) expect(Failure.describe(error).exitCode, String(error)).toBe(2)
  })

  it("a defect exits 1 and keeps its trace for --verbose only", () => {
    const report = Failure.describeCause(Cause.die(new Error("boom")))
    expect(report).toMatchObject({ exitCode: 1, tag: "Defect", message: "unexpected failure: boom" })
    expect(Failure.render(report, { json: false, verbose: false, secrets: [] })).toBe(
      "keel: unexpected failure: boom\n"
    )
    expect(Failure.render(report, { json: false, verbose: true, secrets: [] })).toContain("Error: boom")
  })

  it("an interruption exits 130", () => {
    expect(Failure.describeCause(Cause.interrupt(Effect.runSync(Effect.fiberId))).exitCode).toBe(130)
  })
})

describe("rendering a failure", () => {
  const lost = new QueueError.LeaseLost({ queue: "jobs", messageIds: [3, 4] })

  it("is one line 'keel: <message>' without --verbose", () => {
    const text = Failure.render(Failure.describe(lost), { json: false, verbose: false, secrets: [] })
    expect(text).toBe(`keel: ${lost.message}\n`)
  })

  it("is one JSON line with the error's tag, message and fields under --json", () => {
    const text = Failure.render(Failure.describe(lost), { json: true, verbose: false, secrets: [] })
    expect(text.trimEnd().split("\n")).toHaveLength(1)
    expect(JSON.parse(text)).toEqual({
      error: { _tag: "LeaseLost", message: lost.message, queue: "jobs", messageIds: [3, 4] },
      exitCode: 1
    })
  })

  it("never prints a literal secret, with or without --verbose and --json", () => {
    const dsn = "postgres://keel:Sw0rdf1sh%21@db.example:5432/keel?sslpassword=Hunter22"
    const secrets = Failure.secretsOf(dsn, { LIBSQL_AUTH_TOKEN: "tok-ABCDEFGH" })
    const error = new DbError.DatabaseFailure({
      code: "XX000",
      message: `failed for ${dsn} with password Sw0rdf1sh! and token tok-ABCDEFGH and Hunter22`
    })
    for (const json of [false, true]) {
      for (const verbose of [false, true]) {
        const text = Failure.render(Failure.describe(error), { json, verbose, secrets })
        for (const secret of ["Sw0rdf1sh", "Hunter22", "tok-ABCDEFGH"]) expect(text).not.toContain(secret)
      }
    }
  })

  it("collapses multi-line messages and strips ANSI styling", () => {
    expect(Failure.oneLine("\u001b[1mbad\u001b[0m\n  flag\n")).toBe("bad flag")
  })
})

describe("parsing durations", () => {
  it("reads milliseconds, short units and Effect's long forms", () => {
    expect(Parse.duration("x", "1500")).toEqual(Either.right(1500))
    expect(Parse.duration("x", "250ms")).toEqual(Either.right(250))
    expect(Parse.duration("x", "30s")).toEqual(Either.right(30_000))
    expect(Parse.duration("x", "1.5m")).toEqual(Either.right(90_000))
    expect(Parse.duration("x", "2h")).toEqual(Either.right(7_200_000))
    expect(Parse.duration("x", "7d")).toEqual(Either.right(604_800_000))
    expect(Parse.duration("x", "90 seconds")).toEqual(Either.right(90_000))
  })

  it("refuses anything else, naming the option", () => {
    for (const text of ["", "soon", "-5s", "5 parsecs", "s"]) {
      const parsed = Parse.duration("delay", text)
      expect(Either.isLeft(parsed), text).toBe(true)
      if (Either.isLeft(parsed)) expect(parsed.left.source).toBe("--delay")
    }
  })

  it("reads every whole number of seconds back as its milliseconds", () => {
    FastCheck.assert(
      FastCheck.property(FastCheck.integer({ min: 0, max: 10_000_000 }), (seconds) => {
        expect(Parse.duration("x", `${seconds}s`)).toEqual(Either.right(seconds * 1000))
      })
    )
  })
})

describe("parsing group services", () => {
  it("reads TAG, TAG=PREFERRED and TAG+OFFSET", () => {
    expect(Parse.service("web")).toEqual(
      Either.right({ tag: "web", preferred: undefined, offset: undefined })
    )
    expect(Parse.service("api=3000")).toEqual(
      Either.right({ tag: "api", preferred: 3000, offset: undefined })
    )
    expect(Parse.service("db+2")).toEqual(Either.right({ tag: "db", preferred: undefined, offset: 2 }))
    expect(Either.isLeft(Parse.service("=3000"))).toBe(true)
  })
})

describe("parsing JSON lines", () => {
  it("skips blank lines and names the first malformed line", async () => {
    expect(await Effect.runPromise(Parse.jsonLines('{"a":1}\n\n[2]\r\n"x"\n', "stdin"))).toEqual([
      { a: 1 },
      [2],
      "x"
    ])
    const failed = await Effect.runPromise(Effect.flip(Parse.jsonLines('1\n\n{"a":\n', "input.jsonl")))
    expect(failed.message).toMatch(/^input\.jsonl line 3: not JSON/)
  })

  it("round-trips any list of JSON values written one per line", async () => {
    await FastCheck.assert(
      FastCheck.asyncProperty(FastCheck.array(FastCheck.jsonValue()), async (values) => {
        const text = values.map((value) => JSON.stringify(value)).join("\n")
        const parsed = await Effect.runPromise(Parse.jsonLines(text, "stdin"))
        expect(parsed).toEqual(values.map((value) => JSON.parse(JSON.stringify(value))))
      }),
      { numRuns: 50 }
    )
  })
})

describe("tables", () => {
  it("pads columns and keeps every row on one line whatever the cells hold", () => {
    const text = Output.table(
      ["PORT", "TAG"],
      [
        ["5000", "web"],
        ["5001", "evil\nPORT  TAG"]
      ]
    )
    expect(text.split("\n")).toEqual(["PORT  TAG", "5000  web", "5001  evil\\u000aPORT  TAG"])
  })
})

describe("version", () => {
  it("is package.json's", () => {
    const manifest: unknown = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"))
    expect(manifest).toMatchObject({ version })
  })
})

describe("consume's environment", () => {
  it("names the message for the command", async () => {
    const { environment } = await import("../src/handlers/Consume.js")
    const leased = Schema.decodeUnknownSync(Schemas.Leased)({
      id: 42,
      queue: "jobs",
      payload: { n: 1 },
      priority: -3,
      deliveries: 2,
      enqueuedAt: 1_700_000_000_000,
      leasedAt: 1_700_000_001_000,
      visibleAt: 1_700_000_031_000,
      lease: "tok-1",
      workerId: "w-1",
      lastError: null,
      maxDeliveries: 5,
      backoff: null,
      group: null
    })
    expect(environment(leased, "w-1")).toEqual({
      KEEL_QUEUE: "jobs",
      KEEL_MESSAGE_ID: "42",
      KEEL_LEASE: "tok-1",
      KEEL_DELIVERIES: "2",
      KEEL_PRIORITY: "-3",
      KEEL_ENQUEUED_AT: "1700000000000",
      KEEL_WORKER_ID: "w-1"
    })
  })
})
