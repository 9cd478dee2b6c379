/**
 * Slow-loris clients against the real server (SQLite), with `KEEL_HEADERS_TIMEOUT` 2 s and
 * `KEEL_REQUEST_TIMEOUT` 3 s: headers trickled one byte at a time, a body trickled one byte at a
 * time, and a connection that sends nothing are each answered 408 `RequestTimeout` and
 * disconnected within their timeout plus node's check interval, while other clients keep being
 * answered at once; the handler that waited for the slow body ends. A long-poll `read` is not a
 * slow client: it may wait longer than the request timeout.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Duration, Effect, Fiber } from "effect"
import * as Transport from "../../src/Transport.js"
import { expectOk } from "../support/Expect.js"
import * as RawHttp from "../support/RawHttp.js"
import * as TestServer from "../support/TestServer.js"

const headersMs = 2_000
const requestMs = 3_000
/** Past its deadline, node notices a slow client within one check interval; allow some slack. */
const cutWithin = (deadlineMs: number) => deadlineMs + Transport.checkIntervalMs + 1_000

/** The server cut the connection with a JSON 408 between `deadlineMs` and `cutWithin(deadlineMs)`. */
const expectCut = (outcome: RawHttp.Outcome, deadlineMs: number): number => {
  const reply = RawHttp.replyOf(outcome)
  expect({ status: reply.status, body: RawHttp.json(reply) }).toMatchObject({
    status: 408,
    body: { _tag: "RequestTimeout", message: expect.stringContaining("not received in time") }
  })
  expect(reply.ms).toBeGreaterThan(deadlineMs - 100)
  expect(reply.ms).toBeLessThan(cutWithin(deadlineMs))
  return reply.ms
}

/** GET /health every 100 ms until interrupted; each latency in ms. */
const probe = (server: TestServer.Running, latencies: Array<number>) =>
  Effect.forever(
    Effect.gen(function* () {
      const started = performance.now()
      const reply = yield* TestServer.request(server, "GET", "/health")
      expect(reply.status).toBe(200)
      latencies.push(performance.now() - started)
      yield* Effect.sleep(Duration.millis(100))
    })
  )

const env = { KEEL_HEADERS_TIMEOUT: `${headersMs} millis`, KEEL_REQUEST_TIMEOUT: `${requestMs} millis` }

describe("slow clients [sqlite]", () => {
  layer(TestServer.layer("sqlite", env), { timeout: 120_000, excludeTestServices: true })((it) => {
    it.scoped(
      "20 clients trickling headers are each cut with a 408 within the headers timeout + 1 s; /health answers meanwhile",
      () =>
        Effect.gen(function* () {
          const server = yield* TestServer.TestServer
          const latencies: Array<number> = []
          const probing = yield* Effect.fork(probe(server, latencies))
          const head = `POST /queues HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Slow: ${"a".repeat(500)}`
          const outcomes = yield* Effect.forEach(
            Array.from({ length: 20 }, (_, index) => index),
            () =>
              RawHttp.exchange({ port: server.port, timeoutMs: 15_000, awaitClose: true }, (socket) =>
                RawHttp.trickle(socket, head, 100)
              ),
            { concurrency: "unbounded" }
          )
          yield* Fiber.interrupt(probing)
          const cuts = outcomes.map((outcome) => expectCut(outcome, headersMs))
          expect(latencies.length).toBeGreaterThan(10)
          expect(Math.max(...latencies)).toBeLessThan(1_000)
          console.log(
            `slow headers: 20 cut after ${Math.round(Math.min(...cuts))}–${Math.round(Math.max(...cuts))} ms (timeout ${headersMs} ms); ${latencies.length} /health probes meanwhile, slowest ${Math.round(Math.max(...latencies))} ms`
          )
        })
    )

    it.scoped(
      "a body trickled one byte every 100 ms is cut with a 408 within the request timeout + 1 s, and its handler ends",
      () =>
        Effect.gen(function* () {
          const server = yield* TestServer.TestServer
          expectOk(yield* TestServer.request(server, "POST", "/queues", { body: { name: "slow-body" } }), 201)
          const head =
            "POST /queues/slow-body/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
            "Content-Length: 100000\r\n\r\n"
          const latencies: Array<number> = []
          const probing = yield* Effect.fork(probe(server, latencies))
          const outcomes = yield* Effect.forEach(
            Array.from({ length: 10 }, (_, index) => index),
            () =>
              RawHttp.exchange({ port: server.port, timeoutMs: 15_000, awaitClose: true }, (socket) =>
                Effect.zipRight(
                  RawHttp.write(socket, head),
                  RawHttp.trickle(socket, '{"payload":"'.padEnd(100_000, "x"), 100)
                )
              ),
            { concurrency: "unbounded" }
          )
          yield* Fiber.interrupt(probing)
          const cuts = outcomes.map((outcome) => expectCut(outcome, requestMs))
          expect(Math.max(...latencies)).toBeLessThan(1_000)
          // Each handler, waiting in the body reader, was interrupted and logged as the client gone (499).
          yield* Effect.sleep(Duration.millis(200))
          const ended = TestServer.logLines(server.child.stdout()).filter(
            (line) => line.message === "POST /queues/slow-body/messages 499"
          )
          expect(ended.length).toBe(10)
          console.log(
            `slow body: 10 cut after ${Math.round(Math.min(...cuts))}–${Math.round(Math.max(...cuts))} ms (timeout ${requestMs} ms), handlers ended`
          )
        })
    )

    it.scoped("a connection that sends nothing is answered 408 and closed after the headers timeout", () =>
      Effect.gen(function* () {
        const server = yield* TestServer.TestServer
        const outcome = yield* RawHttp.exchange(
          { port: server.port, timeoutMs: 15_000, awaitClose: true },
          () => Effect.void
        )
        expectCut(outcome, headersMs)
      })
    )

    it.scoped(
      "a long-poll read waits past the request timeout: the timeouts bound receiving, not answering",
      () =>
        Effect.gen(function* () {
          const server = yield* TestServer.TestServer
          expectOk(yield* TestServer.request(server, "POST", "/queues", { body: { name: "slow-poll" } }), 201)
          const started = performance.now()
          const reply = yield* TestServer.request(server, "POST", "/queues/slow-poll/read", {
            body: { wait: requestMs + 1_500 }
          })
          const waited = performance.now() - started
          expect(expectOk(reply)).toEqual({ messages: [] })
          expect(waited).toBeGreaterThan(requestMs + 1_400)
        })
    )
  })
})
