import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it, layer } from "@effect/vitest"
import { Queue, Schemas } from "@keel/queue"
import { Transaction } from "@keel/sql"
import { TestDatabase } from "@keel/testkit"
import { Duration, Effect, Either, FastCheck, TestClock } from "effect"
import {
  fingerprint,
  messageRows,
  layer as queueLayer,
  uniqueName,
  withTestClock
} from "./support/QueueTest.js"

describe("queue names", () => {
  it.prop(
    "a name of 1-64 lowercase letters, digits, '_' and '-' is accepted",
    [FastCheck.stringMatching(/^[a-z0-9_-]{1,64}$/)],
    ([name]) => Either.isRight(Schemas.parseQueueName(name))
  )

  it.prop(
    "any other string is an InvalidQueueName",
    [FastCheck.string({ maxLength: 80 }).filter((name) => !/^[a-z0-9_-]{1,64}$/.test(name))],
    ([name]) => {
      const parsed = Schemas.parseQueueName(name)
      return Either.isLeft(parsed) && parsed.left._tag === "InvalidQueueName"
    }
  )
})

describe("payloads", () => {
  it.effect.prop(
    "every JSON value round-trips through its text",
    [FastCheck.jsonValue()],
    ([value]) =>
      Effect.gen(function* () {
        const text = yield* Schemas.encodePayload(value, 1_000_000)
        expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(value)))
      }),
    { fastCheck: { numRuns: 40 } }
  )

  it("a payload that is not plain JSON is an InvalidPayload naming where and why", () => {
    const cyclic: Record<string, unknown> = { name: "loop" }
    cyclic.self = cyclic
    const cases: ReadonlyArray<readonly [unknown, string]> = [
      [undefined, "$ is undefined"],
      [{ a: [1, { b: Number.NaN }] }, "$.a[1].b is NaN"],
      [[0, [1, 2, Number.POSITIVE_INFINITY]], "$[1][2] is Infinity"],
      [{ when: new Date(0) }, "$.when is an instance of Date"],
      [{ nested: { f: () => 1 } }, "$.nested.f is a function"],
      [cyclic, "$.self refers back to an enclosing value (a cycle)"],
      [{ big: 1n }, "$.big is a bigint"]
    ]
    for (const [payload, reason] of cases) {
      const encoded = Schemas.encodePayload(payload, 1_000_000)
      expect(Either.isLeft(encoded) && encoded.left._tag === "InvalidPayload" && encoded.left.reason).toBe(
        reason
      )
    }
    // A value that appears twice without enclosing itself is not a cycle.
    const shared = { x: 1 }
    expect(Either.getOrThrow(Schemas.encodePayload({ a: shared, b: [shared] }, 1_000_000))).toBe(
      '{"a":{"x":1},"b":[{"x":1}]}'
    )
  })

  it.effect("text that is not JSON is an InvalidPayload", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(Schemas.parsePayload("{not json"))
      expect(error._tag).toBe("InvalidPayload")
      expect(yield* Schemas.parsePayload('{"a":[1,2]}')).toEqual({ a: [1, 2] })
    })
  )
})

TestDatabase.describeEach("Queue contract: queues and sends", (kind) => {
  layer(queueLayer(kind), { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("a created queue has the given settings, is listed, and can be changed", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const name = uniqueName("settings")
        const created = yield* queues.createQueue(name, {
          visibilityTimeout: "45 seconds",
          maxDeliveries: 7,
          retention: Duration.days(2)
        })
        expect(created.name).toBe(name)
        expect(Duration.toMillis(created.visibilityTimeout)).toBe(45_000)
        expect(created.maxDeliveries).toBe(7)
        expect(Duration.toMillis(created.retention)).toBe(2 * 86_400_000)
        expect((yield* queues.listQueues).map((q) => q.name)).toContain(name)
        expect((yield* queues.getQueue(name)).maxDeliveries).toBe(7)
        const updated = yield* queues.updateQueue(name, { maxDeliveries: 3 })
        expect(updated.maxDeliveries).toBe(3)
        expect(Duration.toMillis(updated.visibilityTimeout)).toBe(45_000)
      })
    )

    it.effect("a queue created without settings gets the defaults", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const created = yield* queues.createQueue(uniqueName("defaults"))
        expect(Duration.toMillis(created.visibilityTimeout)).toBe(Queue.defaults.visibilityTimeoutMs)
        expect(created.maxDeliveries).toBe(Queue.defaults.maxDeliveries)
        expect(Duration.toMillis(created.retention)).toBe(Queue.defaults.retentionMs)
      })
    )

    it.effect("creating an existing queue is QueueAlreadyExists; ensureQueue returns it unchanged", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const name = uniqueName("exists")
        yield* queues.createQueue(name, { maxDeliveries: 9 })
        const before = yield* fingerprint
        const error = yield* Effect.flip(queues.createQueue(name))
        expect(error._tag).toBe("QueueAlreadyExists")
        const ensured = yield* queues.ensureQueue(name, { maxDeliveries: 2 })
        expect(ensured.maxDeliveries).toBe(9)
        expect(yield* fingerprint).toEqual(before)
      })
    )

    it.effect("invalid queue names are InvalidQueueName for every operation, and nothing changes", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const before = yield* fingerprint
        for (const name of [
          "",
          "Upper",
          "has space",
          "dot.name",
          "a".repeat(65),
          "drop;table",
          "ünï",
          "x\u0000y"
        ]) {
          const errors = yield* Effect.all([
            Effect.flip(queues.createQueue(name)),
            Effect.flip(queues.ensureQueue(name)),
            Effect.flip(queues.getQueue(name)),
            Effect.flip(queues.send(name, { a: 1 })),
            Effect.flip(queues.sendBatch(name, [{ payload: 1 }])),
            Effect.flip(queues.read(name)),
            Effect.flip(queues.delete(name, { id: 1, lease: "x" })),
            Effect.flip(queues.deleteQueue(name)),
            Effect.flip(queues.purgeQueue(name)),
            Effect.flip(queues.metrics(name)),
            Effect.flip(queues.requeueDead(name))
          ])
          for (const error of errors) expect(error._tag).toBe("InvalidQueueName")
        }
        expect(yield* fingerprint).toEqual(before)
      })
    )

    it.effect("operations on an unknown queue are QueueNotFound, and nothing changes", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const name = uniqueName("missing")
        const before = yield* fingerprint
        const errors = yield* Effect.all([
          Effect.flip(queues.getQueue(name)),
          Effect.flip(queues.updateQueue(name, { maxDeliveries: 2 })),
          Effect.flip(queues.send(name, { a: 1 })),
          Effect.flip(queues.send(name, { a: 1 }, { dedupKey: "k" })),
          Effect.flip(queues.sendBatch(name, [{ payload: 1 }, { payload: 2, dedupKey: "x" }])),
          Effect.flip(queues.sendBatch(name, [])),
          Effect.flip(queues.read(name)),
          Effect.flip(queues.archive(name, { id: 1, lease: "x" })),
          Effect.flip(queues.release(name, { id: 1, lease: "x" })),
          Effect.flip(queues.extendVisibility(name, { id: 1, lease: "x" })),
          Effect.flip(queues.deleteQueue(name)),
          Effect.flip(queues.purgeQueue(name)),
          Effect.flip(queues.metrics(name)),
          Effect.flip(queues.deadLetters(name)),
          Effect.flip(queues.requeueDead(name))
        ])
        for (const error of errors) expect(error._tag).toBe("QueueNotFound")
        expect(yield* fingerprint).toEqual(before)
      })
    )

    it.effect(
      "negative, non-finite or absurd options are InvalidOption naming the option, and nothing changes",
      () =>
        Effect.gen(function* () {
          const queues = yield* Queue.Queues
          const name = uniqueName("options")
          yield* queues.createQueue(name)
          yield* queues.send(name, "seed")
          const before = yield* fingerprint
          const cases: ReadonlyArray<readonly [string, Effect.Effect<unknown, { readonly _tag: string }>]> = [
            ["visibilityTimeout", queues.createQueue(uniqueName("bad"), { visibilityTimeout: -1 })],
            [
              "visibilityTimeout",
              queues.createQueue(uniqueName("bad"), { visibilityTimeout: Duration.days(2) })
            ],
            ["visibilityTimeout", queues.createQueue(uniqueName("bad"), { visibilityTimeout: 0 })],
            ["maxDeliveries", queues.createQueue(uniqueName("bad"), { maxDeliveries: 0 })],
            ["maxDeliveries", queues.createQueue(uniqueName("bad"), { maxDeliveries: 2.5 })],
            ["retention", queues.updateQueue(name, { retention: Number.POSITIVE_INFINITY })],
            ["retention", queues.updateQueue(name, { retention: "-3 days" })],
            ["delay", queues.send(name, 1, { delay: -5 })],
            ["delay", queues.send(name, 1, { delay: Number.NaN })],
            ["delay", queues.send(name, 1, { delay: "400 days" })],
            // Untyped input, as it arrives from a command line or a request body.
            ["delay", queues.send(name, 1, { delay: "soon" as Duration.DurationInput })],
            ["priority", queues.send(name, 1, { priority: 1.5 })],
            ["priority", queues.send(name, 1, { priority: 100_000 })],
            ["dedupKey", queues.send(name, 1, { dedupKey: "" })],
            ["dedupKey", queues.send(name, 1, { dedupKey: "k".repeat(600) })],
            ["messages[1].delay", queues.sendBatch(name, [{ payload: 1 }, { payload: 2, delay: -1 }])],
            ["qty", queues.read(name, { qty: 0 })],
            ["qty", queues.read(name, { qty: -3 })],
            ["qty", queues.read(name, { qty: 1.5 })],
            ["qty", queues.read(name, { qty: Schemas.maxBatchSize + 1 })],
            ["visibilityTimeout", queues.read(name, { visibilityTimeout: -100 })],
            ["visibilityTimeout", queues.read(name, { visibilityTimeout: Number.POSITIVE_INFINITY })],
            ["visibilityTimeout", queues.read(name, { visibilityTimeout: "13 hours" })],
            ["workerId", queues.read(name, { workerId: "" })],
            ["lease.id", queues.delete(name, { id: -1, lease: "x" })],
            ["lease.lease", queues.archive(name, { id: 1, lease: "" })],
            ["delay", queues.release(name, { id: 1, lease: "x" }, { delay: -1 })],
            [
              "visibilityTimeout",
              queues.extendVisibility(name, { id: 1, lease: "x" }, { visibilityTimeout: -1 })
            ],
            ["limit", queues.deadLetters(name, { limit: 0 })],
            ["ids[0]", queues.requeueDead(name, { ids: [0] })]
          ]
          for (const [option, attempt] of cases) {
            const error = yield* Effect.flip(attempt)
            expect({ option, tag: error._tag }).toEqual({ option, tag: "InvalidOption" })
            expect(error).toHaveProperty("option", option)
          }
          expect(yield* fingerprint).toEqual(before)
        })
    )

    it.effect("non-JSON and oversized payloads are typed errors, and nothing is written", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const name = uniqueName("payloads")
        yield* queues.createQueue(name)
        const before = yield* fingerprint
        const cyclic: Record<string, unknown> = { a: 1 }
        cyclic.self = cyclic
        const invalid: ReadonlyArray<unknown> = [
          undefined,
          () => 1,
          Symbol("s"),
          10n,
          Number.NaN,
          Number.POSITIVE_INFINITY,
          cyclic,
          new Date(0),
          new Map(),
          { nested: { list: [1, undefined] } },
          { big: 1n }
        ]
        for (const payload of invalid) {
          const error = yield* Effect.flip(queues.send(name, payload))
          expect(error._tag).toBe("InvalidPayload")
        }
        const batchError = yield* Effect.flip(queues.sendBatch(name, [{ payload: 1 }, { payload: () => 2 }]))
        expect(batchError._tag).toBe("InvalidPayload")
        expect(batchError.message).toContain("messages[1]")
        const large = yield* Effect.flip(queues.send(name, "x".repeat(Queue.defaults.maxPayloadBytes)))
        expect(large).toMatchObject({ _tag: "PayloadTooLarge", limit: Queue.defaults.maxPayloadBytes })
        expect(yield* fingerprint).toEqual(before)
        const fits = "é".repeat(Math.floor((Queue.defaults.maxPayloadBytes - 2) / 2))
        yield* queues.send(name, fits)
        expect(yield* messageRows(name)).toBe(1)
      })
    )

    it.effect("a batch over the limit is BatchTooLarge, and nothing is written", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const name = uniqueName("oversized")
        yield* queues.createQueue(name)
        const before = yield* fingerprint
        const tooMany = Array.from({ length: Schemas.maxBatchSize + 1 }, (_, i) => ({ payload: i }))
        const error = yield* Effect.flip(queues.sendBatch(name, tooMany))
        expect(error).toMatchObject({
          _tag: "BatchTooLarge",
          size: Schemas.maxBatchSize + 1,
          limit: Schemas.maxBatchSize
        })
        const leases = Array.from({ length: Schemas.maxBatchSize + 1 }, (_, i) => ({ id: i + 1, lease: "x" }))
        for (const attempt of [
          queues.deleteBatch(name, leases),
          queues.archiveBatch(name, leases),
          queues.releaseBatch(name, leases),
          queues.extendVisibilityBatch(name, leases)
        ]) {
          expect((yield* Effect.flip(attempt))._tag).toBe("BatchTooLarge")
        }
        expect(yield* fingerprint).toEqual(before)
      })
    )

    it.effect("sent JSON payloads come back unchanged, with their priority and delivery count", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const name = uniqueName("roundtrip")
        yield* queues.createQueue(name)
        const payload = {
          text: "héllo ☃ \u2028",
          n: -1.5e300,
          ok: true,
          none: null,
          list: [1, [2, { x: "y" }]]
        }
        const id = yield* queues.send(name, payload, { priority: 3 })
        const [message] = yield* queues.read(name)
        expect(message?.id).toBe(id)
        expect(message?.payload).toEqual(payload)
        expect(message?.priority).toBe(3)
        expect(message?.deliveries).toBe(1)
        expect(message?.queue).toBe(name)
      })
    )

    it.effect("read delivers by priority (lower first), then by time visible, then by id", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const name = uniqueName("order")
        yield* queues.createQueue(name)
        const late = yield* queues.send(name, "late", { priority: 5 })
        const first = yield* queues.send(name, "first", { priority: -1 })
        const a = yield* queues.send(name, "a")
        const b = yield* queues.send(name, "b")
        const messages = yield* queues.read(name, { qty: 10 })
        expect(messages.map((m) => m.id)).toEqual([first, a, b, late])
      })
    )

    it.effect("a delayed message stays invisible until its delay has passed", () =>
      withTestClock(
        Effect.gen(function* () {
          const queues = yield* Queue.Queues
          const name = uniqueName("delay")
          yield* queues.createQueue(name)
          const id = yield* queues.send(name, "later", { delay: "10 seconds" })
          expect(yield* queues.read(name)).toEqual([])
          expect((yield* queues.metrics(name)).delayed).toBe(1)
          yield* TestClock.adjust(Duration.seconds(9))
          expect(yield* queues.read(name)).toEqual([])
          yield* TestClock.adjust(Duration.seconds(1))
          expect((yield* queues.read(name)).map((m) => m.id)).toEqual([id])
        })
      )
    )

    it.effect("a batch is written in one transaction; ids come back in input order", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const name = uniqueName("batch")
        yield* queues.createQueue(name)
        const ids = yield* queues.sendBatch(
          name,
          Array.from({ length: 100 }, (_, i) => ({ payload: { i } }))
        )
        expect(new Set(ids).size).toBe(100)
        const read = yield* queues.read(name, { qty: 100 })
        const byId = new Map(read.map((m) => [m.id, m.payload]))
        for (const [i, id] of ids.entries()) expect(byId.get(id)).toEqual({ i })
      })
    )

    // Skipped on turso: the engine evaluates the group rule's correlated NOT EXISTS for every
    // candidate even when `group_key IS NULL` already decides it, scanning the queue per row, so
    // reading 10,000 messages at once takes minutes (3,000: 12 s). Sends and reads of up to a
    // thousand run in every other test here.
    it.effect.skipIf(kind === "turso")(
      "a batch larger than one statement's parameter limit is chunked and fully written",
      () =>
        Effect.gen(function* () {
          const queues = yield* Queue.Queues
          const name = uniqueName("chunked")
          yield* queues.createQueue(name)
          const size = Schemas.maxBatchSize
          const ids = yield* queues.sendBatch(
            name,
            Array.from({ length: size }, (_, i) => ({ payload: i }))
          )
          expect(new Set(ids).size).toBe(size)
          expect(yield* messageRows(name)).toBe(size)
          const read = yield* queues.read(name, { qty: size })
          expect(read.length).toBe(size)
          const byId = new Map(read.map((m) => [m.id, m.payload]))
          for (const [i, id] of ids.entries()) expect(byId.get(id)).toBe(i)
        })
    )

    it.effect("a keyed send is idempotent: the same key yields the same id and one row", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const name = uniqueName("keyed")
        yield* queues.createQueue(name)
        const first = yield* queues.send(name, { n: 1 }, { dedupKey: "order-42" })
        const again = yield* queues.send(name, { n: 2 }, { dedupKey: "order-42" })
        const other = yield* queues.send(name, { n: 3 }, { dedupKey: "order-43" })
        expect(again).toBe(first)
        expect(other).not.toBe(first)
        expect(yield* messageRows(name)).toBe(2)
        const batch = yield* queues.sendBatch(name, [
          { payload: 4, dedupKey: "order-42" },
          { payload: 5, dedupKey: "order-44" },
          { payload: 6, dedupKey: "order-44" },
          { payload: 7 }
        ])
        expect(batch[0]).toBe(first)
        expect(batch[1]).toBe(batch[2])
        expect(yield* messageRows(name)).toBe(4)
        const [message] = (yield* queues.read(name, { qty: 10 })).filter((m) => m.id === first)
        expect(message?.payload).toEqual({ n: 1 })
      })
    )

    it.effect("a key is remembered after its message was consumed: a late retry does not resend", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const name = uniqueName("keyed-consumed")
        yield* queues.createQueue(name)
        const id = yield* queues.send(name, "once", { dedupKey: "k" })
        const [leased] = yield* queues.read(name)
        if (leased === undefined) return yield* Effect.die("no message")
        yield* queues.delete(name, leased)
        expect(yield* queues.send(name, "once", { dedupKey: "k" })).toBe(id)
        expect(yield* messageRows(name)).toBe(0)
      })
    )

    it.effect("a send inside the caller's transaction commits or rolls back with the business write", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const sql = yield* SqlClient.SqlClient
        const name = uniqueName("transactional")
        yield* queues.createQueue(name)
        yield* sql`CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, note TEXT NOT NULL)`
        const failed = yield* Transaction.immediate(
          Effect.gen(function* () {
            yield* sql`INSERT INTO orders (id, note) VALUES (1, 'rolled back')`
            yield* queues.send(name, { order: 1 })
            yield* queues.send(name, { order: 1 }, { dedupKey: "order-1" })
            return yield* Effect.fail("payment declined" as const)
          })
        ).pipe(Effect.flip)
        expect(failed).toBe("payment declined")
        expect(yield* messageRows(name)).toBe(0)
        expect((yield* sql<{ n: number }>`SELECT COUNT(*) AS n FROM orders`).map((r) => Number(r.n))).toEqual(
          [0]
        )
        yield* Transaction.immediate(
          Effect.gen(function* () {
            yield* sql`INSERT INTO orders (id, note) VALUES (2, 'committed')`
            yield* queues.send(name, { order: 2 })
            yield* queues.send(name, { order: 2 }, { dedupKey: "order-2" })
          })
        )
        expect(yield* messageRows(name)).toBe(2)
        expect((yield* sql<{ n: number }>`SELECT COUNT(*) AS n FROM orders`).map((r) => Number(r.n))).toEqual(
          [1]
        )
      })
    )

    it.effect("deleting a queue with messages in flight is refused unless forced", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const name = uniqueName("delete")
        yield* queues.createQueue(name)
        yield* queues.sendBatch(name, [{ payload: 1 }, { payload: 2 }, { payload: 3 }])
        yield* queues.read(name)
        const before = yield* fingerprint
        const refused = yield* Effect.flip(queues.deleteQueue(name))
        expect(refused).toMatchObject({ _tag: "QueueInFlight", inFlight: 1 })
        expect(yield* fingerprint).toEqual(before)
        const removed = yield* queues.deleteQueue(name, { force: true })
        expect(removed.messages).toBe(3)
        expect((yield* Effect.flip(queues.getQueue(name)))._tag).toBe("QueueNotFound")
        expect(yield* messageRows(name)).toBe(0)
      })
    )

    it.effect("purge removes every message, and with archive the archive too", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const name = uniqueName("purge")
        yield* queues.createQueue(name)
        yield* queues.sendBatch(name, [{ payload: 1 }, { payload: 2 }, { payload: 3 }])
        const [leased] = yield* queues.read(name)
        if (leased === undefined) return yield* Effect.die("no message")
        yield* queues.archive(name, leased)
        const first = yield* queues.purgeQueue(name)
        expect(first).toMatchObject({ messages: 2, archived: 0 })
        expect((yield* queues.metrics(name)).archived).toBe(1)
        const second = yield* queues.purgeQueue(name, { archive: true })
        expect(second).toMatchObject({ messages: 0, archived: 1 })
        expect(yield* queues.metrics(name)).toMatchObject({ depth: 0, archived: 0 })
      })
    )
  })
})
