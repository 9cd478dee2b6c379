/**
 * Oversized bodies against the real server (SQLite, the default 1 MiB limit): a declared
 * `Content-Length` over the limit is answered 413 before a byte of the body is sent; a chunked
 * body is answered 413 as soon as it passes the limit, while the client is still sending; and a
 * client that writes its whole oversized body at once and asks to close reads its 413 (or 415),
 * never a reset connection — nor does a client whose large body goes to a route that reads none
 * (an `OPTIONS`, an unknown path). The connection survives: the server discards the rest of the body.
 */
import * as Net from "node:net"
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

/**
 * Sends `line` with `Connection: close` and the first 64 KiB of a 2 MiB JSON-looking body, waits
 * for the answer, then writes the rest of the body. A server that closed with the body unread
 * resets the connection (the client's later writes fail, and a reset can destroy an answer not
 * yet read); one that reads the rest lets every write through.
 */
const answeredMidBody = (
  port: number,
  line: string,
  framing: "length" | "chunked"
): Promise<{
  status: number
  body: unknown
  connection: string | undefined
  writeError: string | undefined
}> =>
  new Promise((resolve, reject) => {
    const total = 2 * limit
    const piece = Buffer.alloc(64 * 1024, "[")
    const socket = Net.connect({ host: "127.0.0.1", port, noDelay: true })
    const chunks: Array<Buffer> = []
    let writeError: string | undefined
    let answered = false
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`${line}: no answer within 10 s`))
    }, 10_000)
    socket.on("error", (error) => {
      writeError = error.message
    })
    const wrap = (data: Buffer) => (framing === "chunked" ? framed(data) : data)
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk)
      const reply = RawHttp.parse(Buffer.concat(chunks), false, false)
      if (answered || reply._tag === "None") return
      answered = true
      const rest = async () => {
        for (let sent = piece.length; sent < total && writeError === undefined; sent += piece.length) {
          await new Promise<void>((done) => socket.write(wrap(piece), () => done()))
        }
        if (framing === "chunked") await new Promise<void>((done) => socket.write("0\r\n\r\n", () => done()))
        // Long enough for a reset of the last writes to come back.
        await new Promise((done) => setTimeout(done, 200))
      }
      void rest().then(() => {
        clearTimeout(timer)
        socket.destroy()
        resolve({
          status: reply.value.status,
          body: RawHttp.json({ ...reply.value, ms: 0 }),
          connection: reply.value.headers.connection,
          writeError
        })
      })
    })
    socket.once("connect", () => {
      socket.write(
        RawHttp.request(`${line} HTTP/1.1`, [
          ["Host", "127.0.0.1"],
          ["Connection", "close"],
          ["Content-Type", "application/json"],
          framing === "length" ? ["Content-Length", String(total)] : ["Transfer-Encoding", "chunked"]
        ])
      )
      socket.write(wrap(piece))
    })
  })

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

    it.scoped(
      "a route that reads no body (OPTIONS, an unknown path) answers while the body still arrives, then reads the rest: no reset",
      () =>
        Effect.gen(function* () {
          const server = yield* TestServer.TestServer
          const cases = [
            { line: "OPTIONS /reservations/show?tag=1&tag=2", framing: "chunked" },
            { line: "GET /no/such/route", framing: "length" },
            { line: "OPTIONS /queues", framing: "length" },
            { line: "GET /queues/no-such-queue/metrics", framing: "chunked" }
          ] as const
          for (const each of cases) {
            const result = yield* Effect.promise(() => answeredMidBody(server.port, each.line, each.framing))
            expect({ line: each.line, ...result }).toMatchObject({
              line: each.line,
              status: expect.any(Number),
              body: { _tag: expect.any(String), message: expect.any(String) },
              connection: "keep-alive",
              writeError: undefined
            })
            expect(result.status).toBeGreaterThanOrEqual(400)
            expect(result.status).toBeLessThan(500)
          }
        })
    )
  })
})
