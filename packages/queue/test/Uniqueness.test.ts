/**
 * Uniqueness windows and modes on every backend and on the memory store: a key held for a window
 * (`dedupWindow`), and what a send with a held key does (`ignore`, `replace`, `debounce`). Time is
 * the TestClock's (every time the queue stores comes from it), so windows and delays are exact.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { expect, layer } from "@effect/vitest"
import { Queue } from "@keel/queue"
import { TestDatabase } from "@keel/testkit"
import { type Duration, Effect, TestClock } from "effect"
import {
  fingerprint,
  layer as queueLayer,
  storeLayer,
  stores,
  uniqueName,
  withTestClock
} from "./support/QueueTest.js"

/** The payloads of every visible message, leased now (and released again at once: nothing else changes). */
const visible = (name: string) =>
  Effect.gen(function* () {
    const queues = yield* Queue.Queues
    const leased = yield* queues.read(name, { qty: 100 })
    yield* queues.releaseBatch(name, leased)
    return leased.map((message) => ({ id: message.id, payload: message.payload, priority: message.priority }))
  })

/** Messages held by `name` (visible, leased or delayed). */
const held = (name: string) =>
  Effect.map(
    Effect.flatMap(Queue.Queues, (queues) => queues.metrics(name)),
    (m) => m.depth + m.inFlight + m.delayed
  )

const advance = (duration: Duration.DurationInput) => TestClock.adjust(duration)

for (const store of stores) {
  layer(storeLayer(store), { timeout: 120_000, excludeTestServices: true })(`uniqueness [${store}]`, (it) => {
    it.effect("a key held for a window: the same message within it, a new one after it", () =>
      withTestClock(
        Effect.gen(function* () {
          const queues = yield* Queue.Queues
          const name = uniqueName("window")
          yield* queues.createQueue(name)
          const first = yield* queues.send(name, "a", { dedupKey: "k", dedupWindow: "1 minute" })
          yield* advance("59 seconds")
          expect(yield* queues.send(name, "b", { dedupKey: "k", dedupWindow: "1 minute" })).toBe(first)
          yield* advance("1 second")
          const second = yield* queues.send(name, "c", { dedupKey: "k", dedupWindow: "1 minute" })
          expect(second).not.toBe(first)
          // The key now holds the new message, for a new window.
          yield* advance("30 seconds")
          expect(yield* queues.sendBatch(name, [{ payload: "d", dedupKey: "k" }])).toEqual([second])
          expect((yield* visible(name)).map((m) => m.payload)).toEqual(["a", "c"])
          // A key without a window is held as before: after its message is done, still the same id.
          const once = yield* queues.send(name, "once", { dedupKey: "forever" })
          yield* advance("1 hour")
          expect(yield* queues.send(name, "again", { dedupKey: "forever" })).toBe(once)
        })
      )
    )

    it.effect(
      "replace: a queued message takes the new payload and priority, keeps its id and its availability",
      () =>
        withTestClock(
          Effect.gen(function* () {
            const queues = yield* Queue.Queues
            const name = uniqueName("replace")
            yield* queues.createQueue(name)
            const id = yield* queues.send(name, { v: 1 }, { dedupKey: "k", delay: "10 seconds" })
            const replaced = yield* queues.send(
              name,
              { v: 2 },
              { dedupKey: "k", dedupMode: "replace", priority: 3 }
            )
            expect(replaced).toBe(id)
            expect(yield* visible(name)).toEqual([])
            yield* advance("10 seconds")
            expect(yield* visible(name)).toEqual([{ id, payload: { v: 2 }, priority: 3 }])
            // `ignore` (the default) leaves it alone.
            expect(yield* queues.send(name, { v: 3 }, { dedupKey: "k" })).toBe(id)
            expect((yield* visible(name)).map((m) => m.payload)).toEqual([{ v: 2 }])
            expect(yield* held(name)).toBe(1)
          })
        )
    )

    it.effect(
      "replace: a leased or finished message is left alone and a new one is stored, which the key holds",
      () =>
        withTestClock(
          Effect.gen(function* () {
            const queues = yield* Queue.Queues
            const name = uniqueName("replace-leased")
            yield* queues.createQueue(name)
            const first = yield* queues.send(name, "v1", { dedupKey: "k" })
            const [lease] = yield* queues.read(name, { visibilityTimeout: "1 minute" })
            expect(lease?.id).toBe(first)
            const second = yield* queues.send(name, "v2", { dedupKey: "k", dedupMode: "replace" })
            expect(second).not.toBe(first)
            // The key holds the new message: the next replace changes it in place.
            expect(yield* queues.send(name, "v3", { dedupKey: "k", dedupMode: "replace" })).toBe(second)
            if (lease === undefined) return yield* Effect.die("not leased")
            yield* queues.delete(name, lease)
            expect(yield* visible(name)).toEqual([{ id: second, payload: "v3", priority: 0 }])
            const [again] = yield* queues.read(name)
            if (again === undefined) return yield* Effect.die("not leased")
            yield* queues.archive(name, again)
            const third = yield* queues.send(name, "v4", { dedupKey: "k", dedupMode: "debounce" })
            expect(third).not.toBe(second)
            expect(yield* visible(name)).toEqual([{ id: third, payload: "v4", priority: 0 }])
          })
        )
    )

    it.effect(
      "replace: a message whose lease ran out is replaced, starts over, and its old lease is lost",
      () =>
        withTestClock(
          Effect.gen(function* () {
            const queues = yield* Queue.Queues
            const name = uniqueName("replace-expired")
            yield* queues.createQueue(name)
            const id = yield* queues.send(name, "v1", { dedupKey: "k" })
            const [stale] = yield* queues.read(name, { visibilityTimeout: "5 seconds" })
            if (stale === undefined) return yield* Effect.die("not leased")
            yield* advance("6 seconds")
            expect(yield* queues.send(name, "v2", { dedupKey: "k", dedupMode: "replace" })).toBe(id)
            expect((yield* Effect.flip(queues.delete(name, stale)))._tag).toBe("LeaseLost")
            const [fresh] = yield* queues.read(name)
            expect(fresh).toMatchObject({ id, payload: "v2", deliveries: 1 })
          })
        )
    )

    it.effect("debounce: each send pushes the message back by its delay; it runs once the sends stop", () =>
      withTestClock(
        Effect.gen(function* () {
          const queues = yield* Queue.Queues
          const name = uniqueName("debounce")
          yield* queues.createQueue(name)
          const send = (n: number) =>
            queues.send(name, { n }, { dedupKey: "user-7", dedupMode: "debounce", delay: "5 seconds" })
          const id = yield* send(1)
          for (const n of [2, 3, 4]) {
            yield* advance("3 seconds")
            expect(yield* send(n)).toBe(id)
            expect(yield* visible(name)).toEqual([])
          }
          yield* advance("4999 millis")
          expect(yield* visible(name)).toEqual([])
          yield* advance("1 millis")
          expect(yield* visible(name)).toEqual([{ id, payload: { n: 4 }, priority: 0 }])
        })
      )
    )

    it.effect("a batch applies its messages in order, as if sent one after another", () =>
      withTestClock(
        Effect.gen(function* () {
          const queues = yield* Queue.Queues
          const name = uniqueName("batch")
          yield* queues.createQueue(name)
          const existing = yield* queues.send(name, "old", { dedupKey: "held" })
          const ids = yield* queues.sendBatch(name, [
            { payload: "k1", dedupKey: "k" },
            { payload: "k2", dedupKey: "k", dedupMode: "replace" },
            { payload: "k3", dedupKey: "k" },
            { payload: "h1", dedupKey: "held", dedupMode: "replace", priority: -1 },
            { payload: "h2", dedupKey: "held" },
            { payload: "plain" }
          ])
          expect(ids[0]).toBe(ids[1])
          expect(ids[1]).toBe(ids[2])
          expect(ids[3]).toBe(existing)
          expect(ids[4]).toBe(existing)
          expect(new Set(ids).size).toBe(3)
          const byId = new Map((yield* visible(name)).map((m) => [m.id, m.payload]))
          expect(byId).toEqual(
            new Map<number, unknown>([
              [existing, "h1"],
              [ids[0] ?? 0, "k2"],
              [ids[5] ?? 0, "plain"]
            ])
          )
        })
      )
    )

    it.effect("bad uniqueness options are InvalidOption naming the option, and nothing is written", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const name = uniqueName("invalid")
        yield* queues.createQueue(name)
        const before = yield* held(name)
        const cases = [
          [{ dedupWindow: "1 minute" }, "dedupWindow"],
          [{ dedupMode: "replace" as const }, "dedupMode"],
          [{ dedupKey: "k", dedupWindow: 0 }, "dedupWindow"],
          [{ dedupKey: "k", dedupWindow: "-1 seconds" }, "dedupWindow"],
          [{ dedupKey: "k", dedupWindow: "4000 days" }, "dedupWindow"],
          [{ dedupKey: "k", dedupMode: "upsert" as never }, "dedupMode"]
        ] as const
        for (const [options, option] of cases) {
          const error = yield* Effect.flip(queues.send(name, "x", options))
          expect(error).toMatchObject({ _tag: "InvalidOption", option })
        }
        const batch = yield* Effect.flip(
          queues.sendBatch(name, [
            { payload: 1, dedupKey: "a" },
            { payload: 2, dedupMode: "debounce" }
          ])
        )
        expect(batch).toMatchObject({ _tag: "InvalidOption", option: "messages[1].dedupMode" })
        expect(yield* held(name)).toBe(before)
      })
    )
  })
}

for (const kind of TestDatabase.kinds) {
  layer(queueLayer(kind), { timeout: 120_000, excludeTestServices: true })(
    `uniqueness in SQL [${kind}]`,
    (it) => {
      it.effect("maintenance forgets a key once its window is over, and only then", () =>
        withTestClock(
          Effect.gen(function* () {
            const queues = yield* Queue.Queues
            const sql = yield* SqlClient.SqlClient
            const name = uniqueName("purge")
            yield* queues.createQueue(name)
            yield* queues.send(name, "a", { dedupKey: "short", dedupWindow: "1 second" })
            yield* queues.send(name, "b", { dedupKey: "long", dedupWindow: "1 hour" })
            const keys = Effect.map(
              sql<{ dedup_key: string }>`SELECT k.dedup_key FROM keel_queue_dedup_keys k
                JOIN keel_queue_queues q ON q.id = k.queue_id WHERE q.name = ${name} ORDER BY k.dedup_key`,
              (rows) => rows.map((row) => row.dedup_key)
            )
            yield* advance("2 seconds")
            const report = yield* queues.maintain
            expect(report.purgedKeys).toBeGreaterThanOrEqual(1)
            expect(yield* keys).toEqual(["long"])
            const unchanged = yield* fingerprint
            yield* queues.maintain
            expect(yield* fingerprint).toEqual(unchanged)
          })
        )
      )

      it.effect(
        "20 concurrent debounced sends of one key store one message; after the window, one new one",
        () =>
          withTestClock(
            Effect.gen(function* () {
              const queues = yield* Queue.Queues
              const name = uniqueName("concurrent")
              yield* queues.createQueue(name)
              const send = (n: number) =>
                queues.send(name, { n }, { dedupKey: "k", dedupMode: "debounce", dedupWindow: "1 minute" })
              const first = yield* Effect.forEach(
                Array.from({ length: 20 }, (_, n) => n),
                send,
                {
                  concurrency: "unbounded"
                }
              )
              expect(new Set(first).size).toBe(1)
              yield* advance("61 seconds")
              const second = yield* Effect.forEach(
                Array.from({ length: 20 }, (_, n) => n),
                (n) => queues.send(name, { n }, { dedupKey: "k", dedupWindow: "1 minute" }),
                { concurrency: "unbounded" }
              )
              expect(new Set(second).size).toBe(1)
              expect(second[0]).not.toBe(first[0])
              expect(yield* held(name)).toBe(2)
            })
          )
      )
    }
  )
}
