/**
 * Job options over HTTP: uniqueness (`dedupWindow`, `dedupMode`) and a retry policy per message
 * (`maxDeliveries`, `backoff`) on `POST /queues/{name}/messages` and in batch sends, described by
 * the OpenAPI document and read back with the message; cancel and update by id; bad values are
 * 400 naming the field.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { expectError, expectOk, list } from "./support/Expect.js"
import * as TestServer from "./support/TestServer.js"

for (const kind of TestServer.kinds) {
  describe(`HTTP job options [${kind}]`, () => {
    layer(TestServer.layer(kind), { timeout: 120_000, excludeTestServices: true })((it) => {
      it.effect("replace and debounce keep the id and change the message; a window ends the key", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          expectOk(yield* http.post("/queues", { name: "unique" }), 201)
          const send = (body: Record<string, unknown>) =>
            Effect.map(http.post("/queues/unique/messages", body), (reply) => Number(expectOk(reply, 201).id))
          const first = yield* send({ payload: "v1", dedupKey: "k" })
          expect(yield* send({ payload: "v2", dedupKey: "k", dedupMode: "replace", priority: -1 })).toBe(
            first
          )
          const windowed = yield* send({ payload: "w1", dedupKey: "w", dedupWindow: 200 })
          yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 250)))
          const renewed = yield* send({ payload: "w2", dedupKey: "w", dedupWindow: 200 })
          expect(renewed).not.toBe(windowed)
          const batch = expectOk(
            yield* http.post("/queues/unique/messages/batch", {
              messages: [
                { payload: "d1", dedupKey: "d", dedupMode: "debounce", delay: 3_600_000 },
                { payload: "d2", dedupKey: "d", dedupMode: "debounce", delay: 3_600_000 }
              ]
            }),
            201
          )
          const ids = Array.isArray(batch.ids) ? batch.ids : []
          expect(ids[0]).toBe(ids[1])
          const read = list(expectOk(yield* http.post("/queues/unique/read", { qty: 10 })), "messages")
          expect(read.map((message) => message.payload)).toEqual(["v2", "w1", "w2"])
          expect(expectOk(yield* http.get("/queues/unique/metrics"))).toMatchObject({
            delayed: 1,
            inFlight: 3
          })
        })
      )

      it.effect(
        "maxDeliveries and backoff are stored with the message, read back, and honoured on release",
        () =>
          Effect.gen(function* () {
            const http = yield* TestServer.client
            expectOk(yield* http.post("/queues", { name: "policy", maxDeliveries: 5 }), 201)
            expectOk(
              yield* http.post("/queues/policy/messages", {
                payload: "own",
                maxDeliveries: 1,
                backoff: { kind: "fixed", base: 30_000, jitter: 0 }
              }),
              201
            )
            const [message] = list(expectOk(yield* http.post("/queues/policy/read", {})), "messages")
            expect(message).toMatchObject({
              payload: "own",
              maxDeliveries: 1,
              backoff: { kind: "fixed", base: 30_000, max: 300_000, jitter: 0 }
            })
            const released = expectOk(
              yield* http.post(`/queues/policy/messages/${String(message?.id)}/release`, {
                lease: message?.lease,
                error: "boom"
              })
            )
            expect(released).toMatchObject({ outcome: "dead" })
            const invalid = expectError(
              yield* http.post("/queues/policy/messages", {
                payload: 1,
                backoff: { base: 60_000, max: 1_000 }
              }),
              400,
              "InvalidOption"
            )
            expect(invalid.option).toBe("backoff.max")
          })
      )

      it.effect(
        "cancel archives a message as cancelled, update changes a queued one; 404 and 409 otherwise",
        () =>
          Effect.gen(function* () {
            const http = yield* TestServer.client
            expectOk(yield* http.post("/queues", { name: "byid" }), 201)
            const send = (body: Record<string, unknown>) =>
              Effect.map(http.post("/queues/byid/messages", body), (reply) => Number(expectOk(reply, 201).id))
            const first = yield* send({ payload: "first" })
            const second = yield* send({ payload: "second", delay: 3_600_000 })
            expect(expectOk(yield* http.post(`/queues/byid/messages/${first}/cancel`, {}))).toEqual({
              outcome: "cancelled"
            })
            expectError(yield* http.post(`/queues/byid/messages/${first}/cancel`, {}), 404, "MessageNotFound")
            expect(
              (yield* http.patch(`/queues/byid/messages/${second}`, { delay: 0, priority: -2 })).status
            ).toBe(204)
            const [leased] = list(expectOk(yield* http.post("/queues/byid/read", {})), "messages")
            expect(leased).toMatchObject({ id: second, priority: -2 })
            expectError(
              yield* http.patch(`/queues/byid/messages/${second}`, { priority: 1 }),
              409,
              "MessageLeased"
            )
            expect(expectOk(yield* http.post(`/queues/byid/messages/${second}/cancel`, {}))).toEqual({
              outcome: "cancelledRunning"
            })
            expectError(
              yield* http.post(`/queues/byid/messages/${second}/archive`, { lease: leased?.lease }),
              409,
              "LeaseLost"
            )
            const archived = list(expectOk(yield* http.get("/queues/byid/archive")), "messages")
            expect(archived.map((message) => [message.id, message.cancelled])).toEqual([
              [second, true],
              [first, true]
            ])
          })
      )

      it.effect("GET a message by id shows its state and the progress its holder reported", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          expectOk(yield* http.post("/queues", { name: "shown" }), 201)
          const id = Number(
            expectOk(yield* http.post("/queues/shown/messages", { payload: "work", group: "g" }), 201).id
          )
          expectOk(yield* http.post("/queues/shown/messages", { payload: "next", group: "g" }), 201)
          expect(expectOk(yield* http.get(`/queues/shown/messages/${id}`))).toMatchObject({
            id,
            state: "queued",
            progress: null,
            group: "g"
          })
          const [leased, ...others] = list(
            expectOk(yield* http.post("/queues/shown/read", { qty: 10 })),
            "messages"
          )
          // One at a time per group.
          expect(others).toEqual([])
          const reported = yield* http.post(`/queues/shown/messages/${id}/progress`, {
            lease: leased?.lease,
            progress: { pct: 75 }
          })
          expect(reported.status).toBe(204)
          expect(expectOk(yield* http.get(`/queues/shown/messages/${id}`))).toMatchObject({
            state: "leased",
            deliveries: 1,
            progress: { pct: 75 }
          })
          expectError(
            yield* http.post(`/queues/shown/messages/${id}/progress`, { lease: "stale", progress: 1 }),
            409,
            "LeaseLost"
          )
          expectError(yield* http.get("/queues/shown/messages/999999"), 404, "MessageNotFound")
        })
      )

      it.effect("bad uniqueness options are 400 naming the field; nothing is stored", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          expectOk(yield* http.post("/queues", { name: "strict" }), 201)
          expectError(
            yield* http.post("/queues/strict/messages", { payload: 1, dedupKey: "k", dedupMode: "upsert" }),
            400,
            "HttpApiDecodeError"
          )
          const window = expectError(
            yield* http.post("/queues/strict/messages", { payload: 1, dedupWindow: 1000 }),
            400,
            "InvalidOption"
          )
          expect(window.option).toBe("dedupWindow")
          const zero = expectError(
            yield* http.post("/queues/strict/messages", { payload: 1, dedupKey: "k", dedupWindow: 0 }),
            400,
            "InvalidOption"
          )
          expect(zero.option).toBe("dedupWindow")
          expect(expectOk(yield* http.get("/queues/strict/metrics"))).toMatchObject({
            depth: 0,
            delayed: 0,
            inFlight: 0
          })
          const document = expectOk(yield* http.get("/openapi.json"))
          expect(JSON.stringify(document)).toMatch(
            /"dedupMode":\{[^}]*"enum":\["ignore","replace","debounce"\]/
          )
          expect(JSON.stringify(document)).toContain('"dedupWindow"')
        })
      )
    })
  })
}
