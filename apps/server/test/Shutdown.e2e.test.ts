import { describe, expect, it } from "@effect/vitest"
import { Cursor } from "@keel/cursor"
import { Queue } from "@keel/queue"
import { Database } from "@keel/sql"
import { TestDatabase } from "@keel/testkit"
import { Effect, Layer, Option } from "effect"
import { expectOk, list } from "./support/Expect.js"
import * as TestServer from "./support/TestServer.js"

/** What the database holds after the server exited: the cursor's stored position and the queue's messages. */
const afterExit = (dsn: string, peer: string, queue: string) =>
  Effect.gen(function* () {
    const cursors = yield* Cursor.Cursors
    const queues = yield* Queue.Queues
    const position = yield* cursors.get(peer)
    const messages = yield* queues.read(queue, { qty: 10 })
    return { position: Option.getOrNull(position), payloads: messages.map((message) => message.payload) }
  }).pipe(
    Effect.provide(Layer.provide(Layer.mergeAll(Cursor.layer(), Queue.layer()), Database.layer(dsn))),
    Effect.orDie
  )

const stoppingLine = (stdout: string) =>
  TestServer.logLines(stdout).find(
    (line) => typeof line.message === "string" && line.message.startsWith("Keel stopping")
  )

for (const kind of TestServer.kinds) {
  describe(`HTTP graceful shutdown [${kind}]`, () => {
    it.scopedLive(
      "SIGTERM: requests in flight complete, new connections are refused, pending cursors are flushed, exit 0",
      () =>
        Effect.gen(function* () {
          const database = yield* Effect.orDie(TestDatabase.fresh(kind))
          const server = yield* TestServer.start(database, {
            KEEL_CURSOR_FLUSH_INTERVAL: "1 hour",
            KEEL_SHUTDOWN_GRACE: "30 seconds"
          })
          const call = (method: string, path: string, body?: unknown) =>
            TestServer.request(server, method, path, { body })
          expectOk(yield* call("POST", "/queues", { name: "drain" }), 201)
          expectOk(yield* call("PUT", "/cursors/tail", { position: "42-7" }))
          const pending = list(expectOk(yield* call("GET", "/cursors")), "cursors")
          expect(pending).toEqual([expect.objectContaining({ peer: "tail", pending: true, stored: null })])

          // A long poll, running when the signal arrives.
          const pollBody = JSON.stringify({ wait: 20_000 })
          const poll = yield* TestServer.hold(
            server,
            "POST",
            "/queues/drain/read",
            Buffer.byteLength(pollBody)
          )
          yield* poll.accepted
          yield* poll.end(pollBody)
          // An upload, half sent when the signal arrives.
          const uploadBody = JSON.stringify({ payload: { upload: "z".repeat(2000) } })
          const upload = yield* TestServer.hold(
            server,
            "POST",
            "/queues/drain/messages",
            Buffer.byteLength(uploadBody)
          )
          yield* upload.accepted
          yield* upload.write(uploadBody.slice(0, 1000))

          yield* server.child.kill("SIGTERM")
          expect(yield* TestServer.awaitRefusal(server.port)).toBe(true)
          // The long poll returns at once (empty) instead of holding the shutdown for 20 s.
          const polled = yield* Effect.orDie(poll.response)
          expect(polled).toEqual({ status: 200, text: JSON.stringify({ messages: [] }) })
          // The upload is finished after new connections are already refused, and still succeeds.
          yield* upload.end(uploadBody.slice(1000))
          const uploaded = yield* Effect.orDie(upload.response)
          expect(uploaded.status, uploaded.text).toBe(201)

          const exited = yield* server.child.exited
          expect({ code: exited.code, signal: exited.signal }, exited.stderr).toEqual({
            code: 0,
            signal: null
          })
          expect(stoppingLine(exited.stdout)?.annotations.inFlight).toBe(2)
          expect(yield* afterExit(database.dsn, "tail", "drain")).toEqual({
            position: "42-7",
            payloads: [{ upload: "z".repeat(2000) }]
          })
        }),
      120_000
    )

    it.scopedLive(
      "SIGINT: a request that outlives KEEL_SHUTDOWN_GRACE is cut off, and the server still exits 0",
      () =>
        Effect.gen(function* () {
          const database = yield* Effect.orDie(TestDatabase.fresh(kind))
          const server = yield* TestServer.start(database, { KEEL_SHUTDOWN_GRACE: "1 second" })
          expectOk(yield* TestServer.request(server, "POST", "/queues", { body: { name: "stuck" } }), 201)
          const stuck = yield* TestServer.hold(server, "POST", "/queues/stuck/messages", 100)
          yield* stuck.accepted
          yield* stuck.write('{"payload":')
          const started = Date.now()
          yield* server.child.kill("SIGINT")
          const exited = yield* server.child.exited
          expect({ code: exited.code, signal: exited.signal }, exited.stderr).toEqual({
            code: 0,
            signal: null
          })
          expect(Date.now() - started).toBeLessThan(15_000)
          const cut = yield* Effect.either(stuck.response)
          expect(cut._tag).toBe("Left")
          expect(
            TestServer.logLines(exited.stdout).some(
              (line) => typeof line.message === "string" && line.message.includes("after the grace period")
            )
          ).toBe(true)
        }),
      120_000
    )
  })
}
