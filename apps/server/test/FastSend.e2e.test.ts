/**
 * `POST /queues/{name}/messages` answered before the router (`FastSend.ts`) is the router's answer:
 * every request below is sent twice, once on the plain path (answered by `FastSend`) and once with
 * a query string the route ignores (which `FastSend` leaves to the `HttpApi` router), and the two
 * replies must match — status, content type, and body (a message id is the next one).
 */
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { expectOk } from "./support/Expect.js"
import * as TestServer from "./support/TestServer.js"

/** A small payload limit, so a PayloadTooLarge is cheap to reach. */
const env = { KEEL_QUEUE_MAX_PAYLOAD_BYTES: "1024" }

const [kind] = TestServer.kinds

describe("the send route answered before the router", () => {
  layer(TestServer.layer(kind ?? "sqlite", env), { timeout: 120_000, excludeTestServices: true })((it) => {
    const both = (queue: string, body: unknown) =>
      Effect.gen(function* () {
        const http = yield* TestServer.client
        const fast = yield* TestServer.request(http.server, "POST", `/queues/${queue}/messages`, { body })
        const routed = yield* TestServer.request(
          http.server,
          "POST",
          `/queues/${queue}/messages?via=router`,
          {
            body
          }
        )
        const reply = (r: TestServer.Reply) => ({
          status: r.status,
          contentType: r.headers.get("content-type"),
          json: r.json
        })
        return { fast: reply(fast), routed: reply(routed) }
      })

    it.effect("a message is sent (201 and its id), the same way on both paths", () =>
      Effect.gen(function* () {
        const http = yield* TestServer.client
        expectOk(yield* http.post("/queues", { name: "fast" }), 201)
        const { fast, routed } = yield* both("fast", { payload: { n: 1 }, priority: 2, group: "g" })
        expect(fast).toMatchObject({ status: 201, contentType: "application/json" })
        const id = Number((fast.json as { id: number }).id)
        expect({ ...routed, json: routed.json }).toEqual({ ...fast, json: { id: id + 1 } })
        // A dedup key: the second send answers the first message's id on either path.
        const keyed = yield* both("fast", { payload: 1, dedupKey: "k" })
        expect(keyed.routed).toEqual(keyed.fast)
      })
    )

    it.effect("every failure is the router's: the same status and error body", () =>
      Effect.gen(function* () {
        const http = yield* TestServer.client
        expectOk(yield* http.post("/queues", { name: "failing" }), 201)
        const cases: ReadonlyArray<readonly [string, unknown, number]> = [
          ["nope", { payload: 1 }, 404], // QueueNotFound
          ["NOPE", { payload: 1 }, 400], // InvalidQueueName
          ["failing", { payload: 1, priority: 1.5 }, 400], // InvalidOption
          ["failing", { payload: 1, delay: -1 }, 400], // InvalidOption
          ["failing", { payload: "x".repeat(2000) }, 413], // PayloadTooLarge
          ["failing", { payload: 1, priority: "high" }, 400], // HttpApiDecodeError: left to the router
          ["failing", { payload: 1, dedupMode: "sometimes" }, 400], // HttpApiDecodeError
          ["failing", [1, 2], 400], // not an object
          ["failing", {}, 400] // no payload
        ]
        for (const [queue, body, status] of cases) {
          const { fast, routed } = yield* both(queue, body)
          expect(fast, JSON.stringify(body)).toEqual(routed)
          expect(fast.status, JSON.stringify(body)).toBe(status)
        }
      })
    )
  })
})
