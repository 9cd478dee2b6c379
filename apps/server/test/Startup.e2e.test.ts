import { existsSync, mkdtempSync, rmSync } from "node:fs"
import * as Net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Processes, TestDatabase } from "@keel/testkit"
import { Duration, Effect, Option } from "effect"
import { expectError, expectOk } from "./support/Expect.js"
import * as TestServer from "./support/TestServer.js"

/** A temp directory, removed when the scope closes. */
const tempDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "keel-server-start-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

/** The server's stdout lines that announce where it listens (the default logfmt format). */
const listeningLines = (stdout: string) => stdout.split("\n").filter((line) => line.includes("listening on"))

/** Waits until the child prints its listening line; its URL. */
const awaitListening = (child: Processes.Child) =>
  Effect.gen(function* () {
    const deadline = Date.now() + 60_000
    while (Date.now() < deadline) {
      const match = /Keel listening on (http:\/\/[^\s"]+)/.exec(child.stdout())
      if (match?.[1] !== undefined) return match[1]
      const ended = yield* Effect.timeoutOption(child.exited, Duration.millis(25))
      if (Option.isSome(ended)) {
        return yield* Effect.dieMessage(`the server exited: ${ended.value.stdout}\n${ended.value.stderr}`)
      }
    }
    return yield* Effect.dieMessage(`the server did not listen: ${child.stdout()}\n${child.stderr()}`)
  })

/** A port this process listens on for the scope's lifetime. */
const occupiedPort = Effect.acquireRelease(
  Effect.async<Net.Server>((resume) => {
    const server = Net.createServer()
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
  }),
  (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
).pipe(
  Effect.map((server) => {
    const address = server.address()
    return typeof address === "object" && address !== null ? address.port : 0
  })
)

/** Runs the server with `env` until it exits by itself (it should fail at start). */
const runFailing = (env: Readonly<Record<string, string>>) =>
  Effect.scoped(
    Effect.gen(function* () {
      const dir = yield* tempDir
      return yield* Processes.run({
        script: TestServer.mainScript,
        env: { KEEL_DB: `sqlite:${join(dir, "keel.db")}`, XDG_DATA_HOME: dir, KEEL_PORT: "0", ...env }
      })
    })
  )

describe("HTTP server start-up", () => {
  it.scopedLive.skipIf(process.env.KEEL_DB !== undefined)(
    "without KEEL_DB it serves $XDG_DATA_HOME/keel/keel.db and prints one line with its URL and database",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const child = yield* Processes.spawn({
          script: TestServer.mainScript,
          env: { XDG_DATA_HOME: dir, KEEL_PORT: "0", KEEL_HOST: "127.0.0.1" }
        })
        const url = yield* awaitListening(child)
        const file = join(dir, "keel", "keel.db")
        expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
        const lines = listeningLines(child.stdout())
        expect(lines).toHaveLength(1)
        expect(lines[0]).toContain(`Keel listening on ${url} (db: sqlite:${file})`)
        expect(expectOk(yield* TestServer.request({ url }, "GET", "/health"))).toEqual({ status: "ok" })
        expectOk(yield* TestServer.request({ url }, "POST", "/queues", { body: { name: "home" } }), 201)
        expect(existsSync(file)).toBe(true)
        yield* child.kill("SIGTERM")
        const exited = yield* child.exited
        expect({ code: exited.code, stderr: exited.stderr }).toEqual({ code: 0, stderr: "" })
      }),
    60_000
  )

  it.scopedLive(
    "an invalid variable, a bad DSN or a port in use stops the start: one line on stderr, no secret, exit 1",
    () =>
      Effect.gen(function* () {
        const taken = yield* occupiedPort
        const cases: ReadonlyArray<readonly [Record<string, string>, string]> = [
          [{ KEEL_PORT: "abc" }, 'KEEL_PORT: Expected an integer value but received "abc"'],
          [{ KEEL_PORT: "70000" }, "KEEL_PORT must be an integer from 0 to 65535"],
          [{ KEEL_HOST: " " }, "KEEL_HOST must not be empty"],
          [{ KEEL_LOG_LEVEL: "loud" }, "KEEL_LOG_LEVEL: Expected a log level"],
          [{ KEEL_MAX_BODY_BYTES: "10" }, "KEEL_MAX_BODY_BYTES must be an integer from 1024"],
          [{ KEEL_SHUTDOWN_GRACE: "forever" }, "KEEL_SHUTDOWN_GRACE: Expected a duration"],
          [{ KEEL_HEADERS_TIMEOUT: "0 seconds" }, "KEEL_HEADERS_TIMEOUT must be a duration from 1 second"],
          [{ KEEL_REQUEST_TIMEOUT: "2 hours" }, "KEEL_REQUEST_TIMEOUT must be a duration from 1 second"],
          [
            { KEEL_HEADERS_TIMEOUT: "20 seconds", KEEL_REQUEST_TIMEOUT: "10 seconds" },
            "KEEL_HEADERS_TIMEOUT must not exceed KEEL_REQUEST_TIMEOUT"
          ],
          [{ KEEL_TOKEN: "short-s3cret" }, "KEEL_TOKEN must be at least 16 characters"],
          [{ KEEL_DB: "mysql://keel:hunter2-s3cret@db.example/keel" }, "mysql://keel:***@db.example/keel"],
          [
            { KEEL_PORT: String(taken) },
            `cannot listen: listen EADDRINUSE: address already in use 127.0.0.1:${taken}`
          ]
        ]
        const results = yield* Effect.forEach(cases, ([env]) => runFailing(env), { concurrency: 4 })
        cases.forEach(([env, expected], index) => {
          const exited = results[index]
          const lines = exited?.stderr.trimEnd().split("\n") ?? []
          expect({ env, code: exited?.code, lines: lines.length }).toEqual({ env, code: 1, lines: 1 })
          expect(lines[0]).toMatch(/^Keel stopped: /)
          expect(lines[0]).toContain(expected)
          expect(exited?.stdout).toBe("")
          expect(`${exited?.stdout}${exited?.stderr}`).not.toMatch(/s3cret/)
        })
      }),
    60_000
  )

  it.scopedLive.skipIf(!TestServer.kinds.includes("postgres"))(
    "a PostgreSQL DSN's password never reaches a log line, starting, serving, failing or stopping",
    () =>
      Effect.gen(function* () {
        const database = yield* Effect.orDie(TestDatabase.fresh("postgres"))
        // The test server trusts local connections, so any password is accepted, and must be hidden.
        const withPassword = new URL(database.dsn)
        withPassword.password = "hunter2-s3cret"
        const server = yield* TestServer.start({ ...database, dsn: withPassword.toString() })
        expect(expectOk(yield* TestServer.request(server, "GET", "/health"))).toEqual({ status: "ok" })
        expectError(yield* TestServer.request(server, "GET", "/queues/missing"), 404, "QueueNotFound")
        const listening = TestServer.logLines(server.child.stdout()).find(
          (line) => typeof line.message === "string" && line.message.startsWith("Keel listening on")
        )
        expect(listening?.message).toContain(":***@")
        expect(listening?.annotations.database).toContain(":***@")
        yield* server.child.kill("SIGTERM")
        const exited = yield* server.child.exited
        expect(exited.code).toBe(0)
        expect(`${exited.stdout}${exited.stderr}`).not.toContain("s3cret")
      }),
    60_000
  )
})
