/**
 * The queue event log over HTTP, on each backend: `events` on `POST /queues` and
 * `PATCH /queues/{name}` switches recording on and off; `GET /queues/{name}/events` and
 * `GET /events` answer `{ events, next }` in id order, resume with `since=next`, and long-poll up
 * to `wait` ms for an event recorded meanwhile; a missing queue is 404 and a bad `since`, `limit`
 * or `wait` is 400 `InvalidOption`; the OpenAPI document describes both routes and the setting.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { expectError, expectOk, list } from "./support/Expect.js"
import * as TestServer from "./support/TestServer.js"

/** The value at `keys` inside a JSON `value`, or undefined. */
const at = (value: unknown, ...keys: ReadonlyArray<string>): unknown =>
  keys.reduce<unknown>(
    (inner, key) => (typeof inner === "object" && inner !== null ? Reflect.get(inner, key) : undefined),
    value
  )

for (const kind of TestServer.kinds) {
  describe(`HTTP queue events [${kind}]`, () => {
    layer(TestServer.layer(kind), { timeout: 120_000, excludeTestServices: true })((it) => {
      it.effect(
        "a queue with events records each message's lifecycle; the log answers it in order and resumes after next",
        () =>
          Effect.gen(function* () {
            const http = yield* TestServer.client
            const created = expectOk(yield* http.post("/queues", { name: "orders", events: true }), 201)
            expect(created).toMatchObject({ name: "orders", events: true })
            expect(expectOk(yield* http.post("/queues", { name: "plain" }), 201)).toMatchObject({
              events: false
            })
            expect(expectOk(yield* http.get("/queues/orders"))).toMatchObject({ events: true })

            const first = expectOk(yield* http.post("/queues/orders/messages", { payload: 1 }), 201).id
            expectOk(yield* http.post("/queues/plain/messages", { payload: 1 }), 201)
            const [once] = list(expectOk(yield* http.post("/queues/orders/read", {})), "messages")
            expectOk(
              yield* http.post(`/queues/orders/messages/${first}/release`, {
                lease: once?.lease,
                error: "boom"
              })
            )
            const [twice] = list(expectOk(yield* http.post("/queues/orders/read", {})), "messages")
            expectOk(
              yield* http.post(`/queues/orders/messages/${first}/archive`, { lease: twice?.lease }),
              204
            )

            const page = expectOk(yield* http.get("/queues/orders/events?wait=5000"))
            const events = list(page, "events")
            expect(events.map((event) => [event.messageId, event.type, event.error])).toEqual([
              [first, "sent", null],
              [first, "leased", null],
              [first, "released", "boom"],
              [first, "leased", null],
              [first, "acknowledged", null]
            ])
            const ids = events.map((event) => Number(event.id))
            expect(ids).toEqual([...ids].sort((a, b) => a - b))
            expect(page.next).toBe(ids[ids.length - 1])
            for (const event of events) expect(event).toMatchObject({ queue: "orders" })

            // limit pages through the log; since=next resumes; every queue's log has no event of plain.
            const two = expectOk(yield* http.get("/queues/orders/events?limit=2&wait=5000"))
            expect(list(two, "events")).toEqual(events.slice(0, 2))
            expect(two.next).toBe(ids[1])
            const rest = expectOk(yield* http.get(`/queues/orders/events?since=${two.next}&wait=5000`))
            expect(list(rest, "events")).toEqual(events.slice(2))
            expect(list(expectOk(yield* http.get("/events?wait=5000")), "events")).toEqual(events)
            const none = expectOk(yield* http.get("/queues/plain/events"))
            expect(none).toEqual({ events: [], next: 0 })
            const after = expectOk(yield* http.get(`/queues/orders/events?since=${page.next}`))
            expect(after).toEqual({ events: [], next: page.next })
          })
      )

      it.effect("a long poll answers with an event recorded while it waits", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          expectOk(yield* http.post("/queues", { name: "polled", events: true }), 201)
          const started = Date.now()
          const poll = yield* Effect.fork(http.get("/queues/polled/events?wait=15000"))
          yield* Effect.sleep("700 millis")
          const sent = expectOk(yield* http.post("/queues/polled/messages", { payload: 1 }), 201).id
          const answered = expectOk(yield* Fiber.join(poll))
          expect(list(answered, "events")).toEqual([
            expect.objectContaining({ queue: "polled", messageId: sent, type: "sent" })
          ])
          expect(Date.now() - started).toBeLessThan(15_000)
          // Nothing more: the poll ends at its wait, empty, with next unchanged.
          const waited = Date.now()
          const empty = expectOk(yield* http.get(`/queues/polled/events?since=${answered.next}&wait=600`))
          expect(empty).toEqual({ events: [], next: answered.next })
          expect(Date.now() - waited).toBeGreaterThanOrEqual(500)
        })
      )

      it.effect("events: false stops recording and true starts it again; other changes keep it", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          expectOk(yield* http.post("/queues", { name: "switched", events: true }), 201)
          expectOk(yield* http.post("/queues/switched/messages", { payload: 1 }), 201)
          const before = expectOk(yield* http.get("/queues/switched/events?wait=5000"))
          expect(list(before, "events")).toHaveLength(1)
          expect(expectOk(yield* http.patch("/queues/switched", { events: false }))).toMatchObject({
            events: false
          })
          expectOk(yield* http.post("/queues/switched/messages", { payload: 2 }), 201)
          expect(expectOk(yield* http.get(`/queues/switched/events?since=${before.next}`))).toEqual({
            events: [],
            next: before.next
          })
          expectOk(yield* http.patch("/queues/switched", { events: true }))
          expect(expectOk(yield* http.patch("/queues/switched", { maxDeliveries: 7 }))).toMatchObject({
            events: true,
            maxDeliveries: 7
          })
          const sent = expectOk(yield* http.post("/queues/switched/messages", { payload: 3 }), 201).id
          const resumed = list(
            expectOk(yield* http.get(`/queues/switched/events?since=${before.next}&wait=5000`)),
            "events"
          )
          expect(resumed).toEqual([expect.objectContaining({ messageId: sent, type: "sent" })])
        })
      )

      it.effect("a missing queue is 404; a bad since, limit or wait is 400 InvalidOption naming it", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          expectOk(yield* http.post("/queues", { name: "checked", events: true }), 201)
          expectError(yield* http.get("/queues/missing/events"), 404, "QueueNotFound")
          expectError(yield* http.get("/queues/Not%20Valid/events"), 400, "InvalidQueueName")
          const cases: ReadonlyArray<readonly [string, string]> = [
            ["since=-1", "since"],
            ["since=1.5", "since"],
            ["limit=0", "limit"],
            ["limit=1001", "limit"],
            ["wait=-1", "wait"],
            ["wait=20001", "wait"]
          ]
          for (const [query, option] of cases) {
            for (const path of ["/queues/checked/events", "/events"]) {
              const refused = expectError(yield* http.get(`${path}?${query}`), 400, "InvalidOption")
              expect({ path, query, option: refused.option }).toEqual({ path, query, option })
            }
          }
          expectError(yield* http.get("/events?since=abc"), 400, "HttpApiDecodeError")
        })
      )

      it.effect("the OpenAPI document describes both routes, their query and the events setting", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          const document = expectOk(yield* http.get("/openapi.json"))
          for (const path of ["/queues/{name}/events", "/events"]) {
            const operation = at(document, "paths", path, "get")
            expect(typeof at(operation, "summary")).toBe("string")
            expect(at(operation, "description")).toMatch(/since=next/)
            expect(Object.keys(at(operation, "responses") ?? {})).toEqual(
              expect.arrayContaining(["200", "400", "503"])
            )
          }
          expect(
            Object.keys(at(document, "paths", "/queues/{name}/events", "get", "responses") ?? {})
          ).toContain("404")
          for (const path of ["/queues", "/queues/{name}"]) {
            const method = path === "/queues" ? "post" : "patch"
            const schema = at(
              document,
              "paths",
              path,
              method,
              "requestBody",
              "content",
              "application/json",
              "schema"
            )
            expect(at(schema, "properties", "events", "description")).toMatch(/event log/)
          }
        })
      )
    })
  })
}
