/**
 * The server's log output as the process writes it: logfmt by default, one JSON object per line
 * with `KEEL_LOG_FORMAT=json`, one line per event (a request is one line); `KEEL_LOG_LEVEL=warning`
 * drops what is logged at info, the request lines among it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Files, Processes, TestDatabase } from "@keel/testkit"
import { Duration, Effect } from "effect"
import * as TestServer from "./support/TestServer.js"

/** The status of `GET url`, or 0 when nothing answers yet. */
const status = (url: string) =>
  Effect.tryPromise(() => fetch(url).then((response) => response.status)).pipe(Effect.orElseSucceed(() => 0))

/**
 * Starts the server with `env` on a port of its own (known before it logs anything), sends a few
 * requests once it is up, stops it with SIGTERM and returns what it wrote.
 */
const serveAndStop = (env: Readonly<Record<string, string>>) =>
  Effect.gen(function* () {
    const database = yield* Effect.orDie(TestDatabase.fresh("sqlite"))
    const port = yield* Files.freePort
    const child = yield* Processes.spawn({
      script: TestServer.mainScript,
      env: {
        KEEL_DB: database.dsn,
        XDG_DATA_HOME: database.dir,
        KEEL_HOST: "127.0.0.1",
        KEEL_PORT: String(port),
        ...env
      }
    })
    const server = { url: `http://127.0.0.1:${port}` }
    const deadline = Date.now() + 60_000
    while ((yield* status(`${server.url}/health`)) !== 200) {
      if (Date.now() > deadline)
        return yield* Effect.dieMessage(`the server did not answer: ${child.stderr()}`)
      yield* Effect.sleep(Duration.millis(25))
    }
    expect((yield* TestServer.request(server, "POST", "/queues", { body: { name: "logged" } })).status).toBe(
      201
    )
    expect((yield* TestServer.request(server, "GET", "/queues/missing")).status).toBe(404)
    yield* child.kill("SIGTERM")
    const exited = yield* child.exited
    expect({ code: exited.code, stderr: exited.stderr }).toEqual({ code: 0, stderr: "" })
    return exited.stdout.split("\n").filter((line) => line !== "")
  })

describe("server logs", () => {
  it.scopedLive(
    "logfmt by default, one JSON object per line with KEEL_LOG_FORMAT=json; one line per request",
    () =>
      Effect.gen(function* () {
        const [logfmt, json] = yield* Effect.all(
          [serveAndStop({}), serveAndStop({ KEEL_LOG_FORMAT: "json" })],
          { concurrency: 2 }
        )
        for (const line of logfmt) expect(line).toMatch(/^timestamp=\S+ level=[A-Z]+ fiber=\S+ message=/)
        expect(logfmt.filter((line) => line.includes('message="POST /queues 201"'))).toHaveLength(1)
        expect(logfmt.filter((line) => line.includes('message="GET /queues/missing 404"'))).toHaveLength(1)

        const records = json.map((line) => JSON.parse(line))
        for (const record of records) {
          expect(record).toMatchObject({
            message: expect.any(String),
            logLevel: expect.any(String),
            timestamp: expect.any(String),
            annotations: expect.any(Object)
          })
        }
        const created = records.filter((record) => record.message === "POST /queues 201")
        expect(created).toHaveLength(1)
        expect(created[0]).toMatchObject({
          logLevel: "INFO",
          annotations: { method: "POST", path: "/queues", status: 201 }
        })
        expect(records.filter((record) => record.message === "GET /queues/missing 404")).toHaveLength(1)
        expect(records.map((record) => record.message)).toContainEqual(
          expect.stringMatching(/^Keel listening on/)
        )
      }),
    90_000
  )

  it.scopedLive(
    "KEEL_LOG_LEVEL=warning drops the lines logged at info: no request lines",
    () =>
      Effect.gen(function* () {
        const [warning, info] = yield* Effect.all(
          [serveAndStop({ KEEL_LOG_LEVEL: "warning" }), serveAndStop({ KEEL_LOG_LEVEL: "info" })],
          { concurrency: 2 }
        )
        expect(info.some((line) => line.includes('message="POST /queues 201"'))).toBe(true)
        expect(warning.filter((line) => line.includes("level=INFO") || line.includes(" /queues"))).toEqual([])
      }),
    90_000
  )
})
