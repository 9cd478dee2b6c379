import { describe, expect, layer } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { body, expectError, expectOk, list } from "./support/Expect.js"
import * as TestServer from "./support/TestServer.js"

/** Small limits so the 413s are cheap to reach: 16 KiB payloads, 256 KiB bodies. */
const env = { KEEL_QUEUE_MAX_PAYLOAD_BYTES: "16384", KEEL_MAX_BODY_BYTES: "262144" }

const leaseOf = (message: Record<string, unknown>) => ({
  id: Number(message.id),
  lease: String(message.lease)
})

for (const kind of TestServer.kinds) {
  describe(`HTTP queues [${kind}]`, () => {
    layer(TestServer.layer(kind, env), { timeout: 120_000, excludeTestServices: true })((it) => {
      it.effect(
        "a queue is created (201), listed, described, updated and deleted; its name is taken once",
        () =>
          Effect.gen(function* () {
            const http = yield* TestServer.client
            const created = expectOk(yield* http.post("/queues", { name: "life", maxDeliveries: 3 }), 201)
            expect(created).toMatchObject({ name: "life", maxDeliveries: 3, visibilityTimeout: 30_000 })
            expectError(yield* http.post("/queues", { name: "life" }), 409, "QueueAlreadyExists")
            const listed = list(expectOk(yield* http.get("/queues")), "queues")
            expect(listed.map((queue) => queue.name)).toContain("life")
            expect(expectOk(yield* http.get("/queues/life"))).toMatchObject({
              name: "life",
              maxDeliveries: 3
            })
            const updated = expectOk(yield* http.patch("/queues/life", { visibilityTimeout: 5000 }))
            expect(updated).toMatchObject({ visibilityTimeout: 5000, maxDeliveries: 3 })
            expect(expectOk(yield* http.del("/queues/life"))).toEqual({ messages: 0, archived: 0 })
            expectError(yield* http.get("/queues/life"), 404, "QueueNotFound")
          })
      )

      it.effect("bad names and settings are 400 with the field named, and nothing is created", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          const name = expectError(yield* http.post("/queues", { name: "Bad Name" }), 400, "InvalidQueueName")
          expect(name.name).toBe("Bad Name")
          const option = expectError(
            yield* http.post("/queues", { name: "settings", visibilityTimeout: -1 }),
            400,
            "InvalidOption"
          )
          expect(option.option).toBe("visibilityTimeout")
          expectError(yield* http.get("/queues/settings"), 404, "QueueNotFound")
          expectError(yield* http.get("/queues/NOPE"), 400, "InvalidQueueName")
          expectError(yield* http.post("/queues", { name: 42 }), 400, "HttpApiDecodeError")
        })
      )

      it.effect("every queue route answers 404 QueueNotFound for a queue that does not exist", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          const lease = { lease: "x" }
          const leases = { leases: [{ id: 1, lease: "x" }] }
          const routes: ReadonlyArray<readonly [string, string, unknown]> = [
            ["GET", "/queues/ghost", undefined],
            ["PATCH", "/queues/ghost", { maxDeliveries: 2 }],
            ["DELETE", "/queues/ghost", undefined],
            ["POST", "/queues/ghost/purge", {}],
            ["POST", "/queues/ghost/messages", { payload: 1 }],
            ["POST", "/queues/ghost/messages/batch", { messages: [{ payload: 1 }] }],
            ["POST", "/queues/ghost/read", {}],
            ["POST", "/queues/ghost/messages/1/delete", lease],
            ["POST", "/queues/ghost/messages/delete", leases],
            ["POST", "/queues/ghost/messages/1/archive", lease],
            ["POST", "/queues/ghost/messages/archive", leases],
            ["POST", "/queues/ghost/messages/1/release", lease],
            ["POST", "/queues/ghost/messages/release", leases],
            ["POST", "/queues/ghost/messages/1/extend", lease],
            ["POST", "/queues/ghost/messages/extend", leases],
            ["GET", "/queues/ghost/archive", undefined],
            ["GET", "/queues/ghost/dead", undefined],
            ["POST", "/queues/ghost/dead/requeue", {}],
            ["POST", "/queues/ghost/dead/delete", {}],
            ["GET", "/queues/ghost/messages", undefined],
            ["GET", "/queues/ghost/metrics", undefined]
          ]
          for (const [method, path, payload] of routes) {
            const reply = yield* TestServer.request(http.server, method, path, { body: payload })
            expect(reply.status, `${method} ${path}: ${reply.text}`).toBe(404)
            expect(body(reply)).toMatchObject({ _tag: "QueueNotFound", queue: "ghost" })
          }
        })
      )

      it.effect("send, read and archive: the message is leased once, then found in the archive", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          expectOk(yield* http.post("/queues", { name: "flow" }), 201)
          const sent = expectOk(
            yield* http.post("/queues/flow/messages", { payload: { n: 1 }, priority: 2 }),
            201
          )
          expect(typeof sent.id).toBe("number")
          const read = list(expectOk(yield* http.post("/queues/flow/read", { qty: 5 })), "messages")
          expect(read).toHaveLength(1)
          expect(read[0]).toMatchObject({ id: sent.id, payload: { n: 1 }, priority: 2, deliveries: 1 })
          expect(list(expectOk(yield* http.post("/queues/flow/read", {})), "messages")).toHaveLength(0)
          const message = read[0] ?? {}
          expectOk(
            yield* http.post(`/queues/flow/messages/${sent.id}/archive`, { lease: message.lease }),
            204
          )
          const archived = list(expectOk(yield* http.get("/queues/flow/archive?dead=false")), "messages")
          expect(archived.map((entry) => entry.id)).toEqual([sent.id])
          expect(archived[0]).toMatchObject({ dead: false, payload: { n: 1 } })
          const metrics = expectOk(yield* http.get("/queues/flow/metrics"))
          expect(metrics).toMatchObject({ queue: "flow", depth: 0, inFlight: 0, archived: 1, dead: 0 })
        })
      )

      it.effect("a stale lease is 409 LeaseLost and changes nothing; the current lease still works", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          expectOk(yield* http.post("/queues", { name: "stale" }), 201)
          const { id } = expectOk(yield* http.post("/queues/stale/messages", { payload: "p" }), 201)
          const first = list(
            expectOk(yield* http.post("/queues/stale/read", { visibilityTimeout: 1 })),
            "messages"
          )[0]
          const second = list(
            yield* Effect.gen(function* () {
              // The 1 ms lease has expired by the time the second read runs.
              yield* Effect.sleep("20 millis")
              return expectOk(yield* http.post("/queues/stale/read", {}))
            }),
            "messages"
          )[0]
          expect(second?.id).toBe(id)
          const lost = expectError(
            yield* http.post(`/queues/stale/messages/${id}/delete`, { lease: first?.lease }),
            409,
            "LeaseLost"
          )
          expect(lost).toMatchObject({ queue: "stale", messageIds: [id] })
          expect(expectOk(yield* http.get("/queues/stale/metrics"))).toMatchObject({ inFlight: 1 })
          expectOk(yield* http.post(`/queues/stale/messages/${id}/delete`, { lease: second?.lease }), 204)
          expect(expectOk(yield* http.get("/queues/stale/metrics"))).toMatchObject({ inFlight: 0, depth: 0 })
        })
      )

      it.effect("extend moves the lease deadline; release makes the message visible again", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          expectOk(yield* http.post("/queues", { name: "extend" }), 201)
          const { id } = expectOk(yield* http.post("/queues/extend/messages", { payload: 1 }), 201)
          const leased = list(expectOk(yield* http.post("/queues/extend/read", {})), "messages")[0] ?? {}
          const extended = expectOk(
            yield* http.post(`/queues/extend/messages/${id}/extend`, {
              lease: leased.lease,
              visibilityTimeout: 3_600_000
            })
          )
          expect(Number(extended.visibleAt)).toBeGreaterThan(Date.now() + 3_500_000)
          const released = expectOk(
            yield* http.post(`/queues/extend/messages/${id}/release`, { lease: leased.lease })
          )
          expect(released).toEqual({ outcome: "released" })
          const again = list(expectOk(yield* http.post("/queues/extend/read", {})), "messages")
          expect(again.map((message) => [message.id, message.deliveries])).toEqual([[id, 2]])
        })
      )

      it.effect("batch send, then batch extend, release, delete and archive act on all leases or none", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          expectOk(yield* http.post("/queues", { name: "batch" }), 201)
          const sent = expectOk(
            yield* http.post("/queues/batch/messages/batch", {
              messages: [{ payload: 1 }, { payload: 2 }, { payload: 3 }, { payload: 4, dedupKey: "k" }]
            }),
            201
          )
          expect(sent.ids).toHaveLength(4)
          const leased = list(expectOk(yield* http.post("/queues/batch/read", { qty: 4 })), "messages")
          expect(leased).toHaveLength(4)
          const [a, b, c, d] = leased.map(leaseOf)
          const extended = expectOk(
            yield* http.post("/queues/batch/messages/extend", {
              leases: [a, b, c, d],
              visibilityTimeout: 60_000
            })
          )
          expect(typeof extended.visibleAt).toBe("number")
          // One unknown lease: nothing is deleted.
          const lost = expectError(
            yield* http.post("/queues/batch/messages/delete", { leases: [a, { id: b?.id, lease: "nope" }] }),
            409,
            "LeaseLost"
          )
          expect(lost.messageIds).toEqual([b?.id])
          expectOk(yield* http.post("/queues/batch/messages/delete", { leases: [a, b] }), 204)
          expectOk(yield* http.post("/queues/batch/messages/archive", { leases: [c] }), 204)
          expect(expectOk(yield* http.post("/queues/batch/messages/release", { leases: [d] }))).toEqual({
            outcomes: ["released"]
          })
          expect(expectOk(yield* http.get("/queues/batch/metrics"))).toMatchObject({
            depth: 1,
            inFlight: 0,
            archived: 1
          })
        })
      )

      it.effect("a failed message past max deliveries is dead-lettered, listed and requeued", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          expectOk(yield* http.post("/queues", { name: "dead", maxDeliveries: 1 }), 201)
          const { id } = expectOk(yield* http.post("/queues/dead/messages", { payload: "poison" }), 201)
          const leased = list(expectOk(yield* http.post("/queues/dead/read", {})), "messages")[0] ?? {}
          const outcome = expectOk(
            yield* http.post(`/queues/dead/messages/${id}/release`, { lease: leased.lease, error: "boom" })
          )
          expect(outcome).toEqual({ outcome: "dead" })
          const dead = list(expectOk(yield* http.get("/queues/dead/dead?limit=10")), "messages")
          expect(dead).toHaveLength(1)
          expect(dead[0]).toMatchObject({ id, dead: true, lastError: "boom", payload: "poison" })
          expect(expectOk(yield* http.post("/queues/dead/dead/requeue", { ids: [id] }))).toEqual({
            ids: [id]
          })
          expect(list(expectOk(yield* http.get("/queues/dead/dead")), "messages")).toHaveLength(0)
          const back = list(expectOk(yield* http.post("/queues/dead/read", {})), "messages")
          expect(back.map((message) => [message.id, message.deliveries])).toEqual([[id, 1]])
        })
      )

      it.effect("messages are listed by state; a dead letter is deleted for good", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          expectOk(yield* http.post("/queues", { name: "browse", maxDeliveries: 1 }), 201)
          const sent = expectOk(
            yield* http.post("/queues/browse/messages/batch", {
              messages: [{ payload: { n: 1 } }, { payload: { n: 2 } }, { payload: { n: 3 }, delay: 60_000 }]
            }),
            201
          )
          const ids = Array.isArray(sent.ids) ? sent.ids.map(Number) : []
          const leased = list(expectOk(yield* http.post("/queues/browse/read", {})), "messages")[0] ?? {}
          const state = (query: string) =>
            Effect.map(http.get(`/queues/browse/messages${query}`), (reply) =>
              list(expectOk(reply), "messages").map((message) => [message.id, message.state, message.payload])
            )
          expect(yield* state("")).toEqual([[ids[1], "queued", { n: 2 }]])
          expect(yield* state("?state=leased")).toEqual([[ids[0], "leased", { n: 1 }]])
          expect(yield* state("?state=delayed")).toEqual([[ids[2], "delayed", { n: 3 }]])
          expect(yield* state(`?state=queued&after=${ids[1]}`)).toEqual([])
          expectError(yield* http.get("/queues/browse/messages?limit=0"), 400, "InvalidOption")
          expect((yield* http.get("/queues/browse/messages?state=ready")).status).toBe(400)
          expectOk(
            yield* http.post(`/queues/browse/messages/${ids[0]}/release`, {
              lease: leased.lease,
              error: "boom"
            })
          )
          expect(expectOk(yield* http.post("/queues/browse/dead/delete", { ids: [ids[0], ids[1]] }))).toEqual(
            {
              ids: [ids[0]]
            }
          )
          expect(list(expectOk(yield* http.get("/queues/browse/dead")), "messages")).toHaveLength(0)
          expectError(yield* http.post("/queues/browse/dead/delete", { ids: [-1] }), 400, "InvalidOption")
        })
      )

      it.effect(
        "deleting a queue with leased messages is 409 QueueInFlight unless force; purge empties it",
        () =>
          Effect.gen(function* () {
            const http = yield* TestServer.client
            expectOk(yield* http.post("/queues", { name: "busy" }), 201)
            expectOk(
              yield* http.post("/queues/busy/messages/batch", { messages: [{ payload: 1 }, { payload: 2 }] }),
              201
            )
            expectOk(yield* http.post("/queues/busy/read", { qty: 1 }))
            expect(expectError(yield* http.del("/queues/busy"), 409, "QueueInFlight")).toMatchObject({
              inFlight: 1
            })
            expect(expectOk(yield* http.post("/queues/busy/purge", {}))).toEqual({ messages: 2, archived: 0 })
            expectOk(yield* http.post("/queues/busy/messages", { payload: 3 }), 201)
            expectOk(yield* http.post("/queues/busy/read", {}))
            expect(expectOk(yield* http.del("/queues/busy?force=true"))).toMatchObject({ messages: 1 })
            expectError(yield* http.get("/queues/busy"), 404, "QueueNotFound")
          })
      )

      it.effect("payloads, batches and options over their limits are refused and nothing is written", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          expectOk(yield* http.post("/queues", { name: "limits" }), 201)
          const large = expectError(
            yield* http.post("/queues/limits/messages", { payload: "x".repeat(20_000) }),
            413,
            "PayloadTooLarge"
          )
          expect(large).toMatchObject({ limit: 16384 })
          const messages = Array.from({ length: 10_001 }, () => ({ payload: 1 }))
          const batch = expectError(
            yield* http.post("/queues/limits/messages/batch", { messages }),
            413,
            "BatchTooLarge"
          )
          expect(batch).toMatchObject({ size: 10_001, limit: 10_000 })
          expectError(yield* http.post("/queues/limits/messages", {}), 400, "InvalidPayload")
          expectError(
            yield* http.post("/queues/limits/messages", { payload: 1, delay: -5 }),
            400,
            "InvalidOption"
          )
          expectError(yield* http.post("/queues/limits/read", { qty: 0 }), 400, "InvalidOption")
          const wait = expectError(
            yield* http.post("/queues/limits/read", { wait: 60_000 }),
            400,
            "InvalidOption"
          )
          expect(wait.option).toBe("wait")
          expectError(yield* http.get("/queues/limits/dead?limit=0"), 400, "InvalidOption")
          expectError(yield* http.get("/queues/limits/dead?limit=abc"), 400, "HttpApiDecodeError")
          expect(expectOk(yield* http.get("/queues/limits/metrics"))).toMatchObject({ depth: 0 })
        })
      )

      it.effect("a long poll returns a message sent while it waits, and an empty list when none comes", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          expectOk(yield* http.post("/queues", { name: "poll" }), 201)
          const started = Date.now()
          const empty = list(expectOk(yield* http.post("/queues/poll/read", { wait: 400 })), "messages")
          expect(empty).toHaveLength(0)
          expect(Date.now() - started).toBeGreaterThanOrEqual(390)
          const waiting = yield* Effect.fork(http.post("/queues/poll/read", { wait: 15_000 }))
          yield* Effect.sleep("200 millis")
          const { id } = expectOk(yield* http.post("/queues/poll/messages", { payload: "late" }), 201)
          const sentAt = Date.now()
          const delivered = list(expectOk(yield* Fiber.join(waiting)), "messages")
          expect(delivered.map((message) => message.id)).toEqual([id])
          expect(Date.now() - sentAt).toBeLessThan(5_000)
        })
      )
    })
  })
}
