/**
 * Oversized bodies against the real server (SQLite, the default 1 MiB limit): a declared
 * `Content-Length` over the limit is answered 413 before a byte of the body is sent; a chunked
 * body is answered 413 as soon as it passes the limit, while the client is still sending; and a
 * client that writes its whole oversized body at once and asks to close reads its 413 (or 415),
 * never a reset connection. The connection survives: the server discards the rest of the body.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { expectOk } from "../support/Expect.js"
import * as RawHttp from "../support/RawHttp.js"
import * as TestServer from "../support/TestServer.js"

const limit = 1024 * 1024
const head = (path: string, headers: ReadonlyArray<RawHttp.Header>) =>
  RawHttp.request(`POST ${path} HTTP/1.1`, [
    ["Host", "127.0.0.1"],
    ["Content-Type", "application/json"],
    ...headers
  ])

/** `data` as one chunk of a chunked body. */
const framed = (data: Buffer): Buffer =>
  Buffer.concat([Buffer.from(`${data.length.toString(16)}\r\n`), data, Buffer.from("\r\n")])

/** A JSON error reply with `status` and `tag`. */
const expectAnswer = (outcome: RawHttp.Outcome, status: number, tag: string): RawHttp.RawReply => {
  const reply = RawHttp.replyOf(outcome)
  expect({ status: reply.status, body: RawHttp.json(reply) }).toMatchObject({
    status,
    body: { _tag: tag, message: expect.any(String) }
  })
  return reply
}

describe("oversized bodies [sqlite]", () => {
  layer(TestServer.layer("sqlite"), { timeout: 120_000, excludeTestServices: true })((it) => {
    it.scoped("a declared Content-Length over the limit is answered 413 before any of the body is sent", () =>
      Effect.gen(function* () {
        const server = yield* TestServer.TestServer
        const declared = 50 * limit
        const outcome = yield* RawHttp.send(
          { port: server.port, timeoutMs: 5_000 },
          head("/queues/big/messages", [["Content-Length", String(declared)]])
        )
        const reply = expectAnswer(outcome, 413, "BodyTooLarge")
        expect(RawHttp.json(reply)).toMatchObject({ limit, size: declared })
        expect(reply.ms).toBeLessThan(1_000)
        console.log(
          `oversize: a declared ${declared} bytes answered 413 in ${Math.round(reply.ms)} ms, no body sent`
        )
      })
    )

    it.scoped("a chunked body is answered 413 once it passes the limit, while it is still being sent", () =>
      Effect.gen(function* () {
        const server = yield* TestServer.TestServer
        expectOk(yield* TestServer.request(server, "POST", "/queues", { body: { name: "big-chunked" } }), 201)
        const chunk = Buffer.alloc(64 * 1024, "x")
        const chunks = 64 // 4 MiB in all, 20 ms apart: over a second to send
        let written = 0
        const outcome = yield* RawHttp.exchange({ port: server.port, timeoutMs: 10_000 }, (socket) =>
          Effect.gen(function* () {
            yield* RawHttp.write(
              socket,
              head("/queues/big-chunked/messages", [["Transfer-Encoding", "chunked"]])
            )
            yield* RawHttp.write(socket, framed(Buffer.from('{"payload":"')))
            for (let index = 0; index < chunks; index++) {
              yield* RawHttp.write(socket, framed(chunk))
              written += chunk.length
              yield* Effect.sleep(Duration.millis(20))
            }
          })
        )
        expectAnswer(outcome, 413, "BodyTooLarge")
        // Answered after the limit and before the client was done: the server did not wait for the rest.
        expect(written).toBeGreaterThanOrEqual(limit - chunk.length)
        expect(written).toBeLessThan(chunks * chunk.length)
        console.log(
          `oversize: a chunked body answered 413 after ${written} of ${chunks * chunk.length} bytes sent`
        )
        // Nothing was stored.
        expect(
          expectOk(yield* TestServer.request(server, "GET", "/queues/big-chunked/metrics"))
        ).toMatchObject({
          depth: 0,
          delayed: 0
        })
      })
    )

    it.scoped(
      "clients that write a whole oversized or non-JSON body at once and ask to close read the answer, not a reset",
      () =>
        Effect.gen(function* () {
          const server = yield* TestServer.TestServer
          const body = Buffer.alloc(3 * limit, "x")
          const cases = [
            { contentType: "application/json", status: 413, tag: "BodyTooLarge" },
            { contentType: "text/plain", status: 415, tag: "UnsupportedMediaType" }
          ] as const
          const outcomes = yield* Effect.forEach(
            Array.from({ length: 16 }, (_, index) => cases[index % 2] ?? cases[0]),
            (each) =>
              Effect.map(
                RawHttp.send(
                  { port: server.port, timeoutMs: 10_000 },
                  RawHttp.request(
                    "POST /queues HTTP/1.1",
                    [
                      ["Host", "127.0.0.1"],
                      ["Connection", "close"],
                      ["Content-Type", each.contentType],
                      ["Content-Length", String(body.length)]
                    ],
                    body
                  )
                ),
                (outcome) => [each, outcome] as const
              ),
            { concurrency: 8 }
          )
          for (const [each, outcome] of outcomes) expectAnswer(outcome, each.status, each.tag)
        })
    )
  })
})
