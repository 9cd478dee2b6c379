/**
 * The built `keel` binary's logging: `--log-level` wherever `--help` lists it (before the
 * subcommand, after it, after the leaf's own flags, `--log-level=LEVEL`) really sets the minimum
 * level, for commands (their log lines on stderr) and for `keel serve` (the server's request
 * lines on stdout); `KEEL_LOG_LEVEL` is its fallback; `KEEL_LOG_FORMAT=json` makes every log line
 * one JSON object, `logfmt` key=value pairs.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Files } from "@keel/testkit"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Keel from "./support/Keel.js"

let dir: string
let counter = 0

beforeAll(async () => {
  await Keel.ensureBuilt()
  dir = mkdtempSync(join(tmpdir(), "keel-cli-log-"))
})

afterAll(() => {
  rmSync(dir, { recursive: true, force: true })
})

/** A database of its own for one run. */
const freshDb = () => ({ KEEL_DB: `sqlite:${join(dir, `db-${++counter}.db`)}` })

/** The stderr lines of a successful run (stdout holds its result). */
const logLines = (result: Keel.Result): ReadonlyArray<string> => {
  expect(result.code, result.stderr).toBe(0)
  return result.stderr.split("\n").filter((line) => line !== "")
}

/** What `keel db migrate` logs at debug on a fresh database: each migration it applies. */
const applied = "applied queue migration 1"

describe("keel commands", () => {
  it("--log-level sets the minimum level wherever --help shows it; KEEL_LOG_LEVEL is the fallback", async () => {
    const help = await Keel.keel(["db", "migrate", "--help"])
    expect(help.stdout).toContain("--log-level")

    const debug: ReadonlyArray<ReadonlyArray<string>> = [
      ["--log-level", "debug", "db", "migrate", "--json"],
      ["db", "--log-level", "debug", "migrate", "--json"],
      ["db", "migrate", "--log-level", "debug", "--json"],
      ["db", "migrate", "--json", "--log-level", "debug"],
      ["db", "migrate", "--json", "--log-level=DEBUG"]
    ]
    const results = await Promise.all(debug.map((args) => Keel.keel(args, { env: freshDb() })))
    results.forEach((result, index) => {
      const what = debug[index]?.join(" ")
      expect(Keel.json(result), what).toHaveProperty("backend", "sqlite")
      expect(logLines(result), what).toContain(
        `keel: debug: ${applied} (queues, messages, archive, keys, workers)`
      )
    })

    const [quiet, fromEnv, flagWins] = await Promise.all([
      Keel.keel(["db", "migrate", "--json"], { env: freshDb() }),
      Keel.keel(["db", "migrate", "--json"], { env: { ...freshDb(), KEEL_LOG_LEVEL: "debug" } }),
      Keel.keel(["db", "migrate", "--json", "--log-level", "warning"], {
        env: { ...freshDb(), KEEL_LOG_LEVEL: "debug" }
      })
    ])
    expect(logLines(quiet)).toEqual([])
    expect(logLines(fromEnv).some((line) => line.includes(applied))).toBe(true)
    expect(logLines(flagWins)).toEqual([])
  })

  it("KEEL_LOG_FORMAT=json writes one JSON object per log line, logfmt key=value pairs; stdout keeps the result", async () => {
    const [json, logfmt] = await Promise.all([
      Keel.keel(["db", "migrate", "--json", "--log-level", "debug"], {
        env: { ...freshDb(), KEEL_LOG_FORMAT: "json" }
      }),
      Keel.keel(["db", "migrate", "--json", "--log-level", "debug"], {
        env: { ...freshDb(), KEEL_LOG_FORMAT: "logfmt" }
      })
    ])
    expect(Keel.json(json)).toHaveProperty("backend", "sqlite")
    const records = logLines(json).map((line) => JSON.parse(line))
    expect(records.length).toBeGreaterThan(1)
    for (const record of records) {
      expect(record).toMatchObject({
        logLevel: "DEBUG",
        message: expect.any(String),
        timestamp: expect.any(String)
      })
    }
    expect(records.map((record) => record.message)).toContain(
      `${applied} (queues, messages, archive, keys, workers)`
    )

    expect(Keel.json(logfmt)).toHaveProperty("backend", "sqlite")
    const pairs = logLines(logfmt)
    expect(pairs.length).toBeGreaterThan(1)
    for (const line of pairs) expect(line).toMatch(/^timestamp=\S+ level=DEBUG fiber=\S+ message=/)
    expect(pairs.some((line) => line.includes(`message="${applied}`))).toBe(true)
  })
})

/** Runs `keel args… --host 127.0.0.1 --port P` until it answers two requests, then stops it. */
const serveTwoRequests = async (
  args: ReadonlyArray<string>,
  env: Readonly<Record<string, string>> = {}
): Promise<Keel.Result> => {
  const port = await Effect.runPromise(Files.freePort)
  const server = Keel.start([...args, "--host", "127.0.0.1", "--port", String(port)], {
    env: { ...freshDb(), ...env }
  })
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 30_000
  for (;;) {
    if (server.child.exitCode !== null) throw new Error(`keel serve exited: ${server.stderr()}`)
    if (Date.now() > deadline)
      throw new Error(`keel serve did not answer: ${server.stdout()}${server.stderr()}`)
    const status = await fetch(`${url}/health`).then(
      (response) => response.status,
      () => 0
    )
    if (status === 200) break
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  expect((await fetch(`${url}/queues`)).status).toBe(200)
  server.child.kill("SIGTERM")
  const stopped = await server.exited
  expect(stopped.code, stopped.stderr).toBe(0)
  expect(stopped.stderr).toBe("")
  return stopped
}

describe("keel serve", () => {
  it("--log-level warning, after serve or before it, drops the request lines logged at info", async () => {
    const [byDefault, after, before, fromEnv, debug] = await Promise.all([
      serveTwoRequests(["serve"]),
      serveTwoRequests(["serve", "--log-level", "warning"]),
      serveTwoRequests(["--log-level", "warning", "serve"]),
      serveTwoRequests(["serve"], { KEEL_LOG_LEVEL: "warning" }),
      serveTwoRequests(["serve", "--log-level=debug"], { KEEL_LOG_LEVEL: "error" })
    ])
    expect(byDefault.stdout).toMatch(/level=INFO .*message="GET \/health 200"/)
    expect(byDefault.stdout).toMatch(/level=INFO .*message="GET \/queues 200"/)
    for (const silenced of [after, before, fromEnv]) {
      expect(silenced.stdout).not.toContain("level=INFO")
      expect(silenced.stdout).not.toContain("GET /")
    }
    expect(debug.stdout).toMatch(/level=DEBUG .*message="opened sqlite:/)
    expect(debug.stdout).toMatch(/level=INFO .*message="GET \/queues 200"/)
  })

  it("KEEL_LOG_FORMAT=json writes every server log line as one JSON object (logfmt by default)", async () => {
    const [json, logfmt] = await Promise.all([
      serveTwoRequests(["serve"], { KEEL_LOG_FORMAT: "json" }),
      serveTwoRequests(["serve"])
    ])
    const lines = json.stdout.split("\n").filter((line) => line !== "")
    expect(lines.length).toBeGreaterThanOrEqual(4)
    const records = lines.map((line) => JSON.parse(line))
    for (const record of records) {
      expect(record).toMatchObject({
        message: expect.any(String),
        logLevel: "INFO",
        timestamp: expect.any(String)
      })
    }
    expect(records).toContainEqual(
      expect.objectContaining({
        message: "GET /queues 200",
        annotations: expect.objectContaining({ method: "GET", path: "/queues", status: 200 })
      })
    )
    for (const line of logfmt.stdout.split("\n").filter((line) => line !== "")) {
      expect(line).toMatch(/^timestamp=\S+ level=INFO fiber=\S+ message=/)
    }
  })
})
