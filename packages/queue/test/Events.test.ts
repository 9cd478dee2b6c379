/**
 * The event log on every backend and the memory store: a queue with `events: true` records each
 * message's lifecycle (sent, leased, released, acknowledged, deleted, dead, cancelled, and sent
 * again when a dead letter is requeued) in order, `Queue.events` streams it from an id or from now,
 * a queue without events records nothing, and bad input is typed. Across processes (SQLite and
 * PostgreSQL): a reader in this process sees every event of 4 consumer processes exactly once, in
 * id order.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, layer } from "@effect/vitest"
import { Queue } from "@keel/queue"
import { Processes, TestDatabase } from "@keel/testkit"
import { Chunk, Effect, Fiber, Option, Stream } from "effect"
import {
  eventually,
  fixture,
  layer as queueLayer,
  storeLayer,
  stores,
  uniqueName
} from "./support/QueueTest.js"

/** The first `count` events of `queue` from `since`, as "type id" (and the error where there is one). */
const collect = (queues: Queue.Service, queue: string, count: number, since?: number) =>
  Effect.map(
    Stream.runCollect(Stream.take(queues.events(queue, { since, pollInterval: "20 millis" }), count)),
    (events) =>
      Chunk.toReadonlyArray(events).map(
        (event) => `${event.type} ${event.messageId}${event.error === null ? "" : ` ${event.error}`}`
      )
  )

for (const store of stores) {
  layer(storeLayer(store), { timeout: 120_000, excludeTestServices: true })(`event log [${store}]`, (it) => {
    it.effect("every step of every message is recorded in order, and read back from any id", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const name = uniqueName("events")
        expect((yield* queues.createQueue(name, { events: true, maxDeliveries: 2 })).events).toBe(true)
        const m1 = yield* queues.send(name, "one")
        const m2 = yield* queues.send(name, "two")
        const m3 = yield* queues.send(name, "three", { delay: "1 minute" })
        const leased = yield* queues.read(name, { qty: 2, visibilityTimeout: "1 minute" })
        const lease = (id: number) => {
          const found = leased.find((message) => message.id === id)
          if (found === undefined) throw new Error(`${id} not leased`)
          return found
        }
        yield* queues.archive(name, lease(m1))
        expect(yield* queues.release(name, lease(m2), { error: "boom" })).toBe("released")
        const [again] = yield* queues.read(name, { visibilityTimeout: "1 minute" })
        if (again === undefined) return yield* Effect.die("m2 not leased again")
        expect(yield* queues.release(name, again, { error: "boom again" })).toBe("dead")
        yield* queues.cancel(name, m3)
        const m4 = yield* queues.send(name, "four")
        const [fourth] = yield* queues.read(name, { visibilityTimeout: "1 minute" })
        if (fourth === undefined) return yield* Effect.die("m4 not leased")
        yield* queues.delete(name, fourth)
        expect(yield* queues.requeueDead(name)).toEqual([m2])
        const expected = [
          `sent ${m1}`,
          `sent ${m2}`,
          `sent ${m3}`,
          `leased ${m1}`,
          `leased ${m2}`,
          `acknowledged ${m1}`,
          `released ${m2} boom`,
          `leased ${m2}`,
          `dead ${m2} boom again`,
          `cancelled ${m3}`,
          `sent ${m4}`,
          `leased ${m4}`,
          `deleted ${m4}`,
          `sent ${m2}`
        ]
        expect(yield* collect(queues, name, expected.length, 0)).toEqual(expected)
        // From any id on: the same log, minus what came before.
        const all = yield* Stream.runCollect(Stream.take(queues.events(name, { since: 0 }), expected.length))
        const third = Chunk.toReadonlyArray(all)[2]
        if (third === undefined) return yield* Effect.die("no third event")
        expect(yield* collect(queues, name, expected.length - 3, third.id)).toEqual(expected.slice(3))
        // One page at once, without waiting: the first five; after the last, none.
        const page = yield* queues.readEvents(name, { since: 0, limit: 5 })
        expect(page.map((event) => event.id)).toEqual(
          Chunk.toReadonlyArray(all)
            .slice(0, 5)
            .map((event) => event.id)
        )
        const last = Chunk.toReadonlyArray(all)[expected.length - 1]
        expect(yield* queues.readEvents(name, { since: last?.id ?? 0 })).toEqual([])
        expect(yield* Effect.flip(queues.readEvents(`${name}-missing`))).toMatchObject({
          _tag: "QueueNotFound"
        })
        expect(yield* Effect.flip(queues.readEvents(name, { limit: 0 }))).toMatchObject({
          _tag: "InvalidOption",
          option: "limit"
        })
        // The log of every queue holds these too, in the same order.
        const everyQueue = yield* Stream.runCollect(
          Stream.take(
            Stream.filter(queues.events(undefined, { since: 0 }), (event) => event.queue === name),
            expected.length
          )
        )
        expect(Chunk.toReadonlyArray(everyQueue).map((event) => event.id)).toEqual(
          Chunk.toReadonlyArray(all).map((event) => event.id)
        )
      })
    )

    it.effect(
      "a reader from now sees what happens after it starts; a queue without events records none",
      () =>
        Effect.gen(function* () {
          const queues = yield* Queue.Queues
          const name = uniqueName("events-live")
          const quiet = uniqueName("events-off")
          yield* queues.createQueue(name, { events: true })
          yield* queues.createQueue(quiet)
          const before = yield* queues.send(name, "before")
          const reader = yield* Effect.fork(collect(queues, name, 2))
          // The reader has taken its starting point once it waits for the next page.
          yield* Effect.sleep("200 millis")
          const after = yield* queues.send(name, "after")
          yield* queues.read(name, { qty: 10 })
          // Not "sent before": that was before the reader started. The read leases in send order.
          expect(yield* Fiber.join(reader)).toEqual([`sent ${after}`, `leased ${before}`])
          yield* queues.send(quiet, "unrecorded")
          const none = yield* Effect.timeoutOption(collect(queues, quiet, 1, 0), "300 millis")
          expect(Option.isNone(none)).toBe(true)
          // Switched on, the queue records from then on.
          yield* queues.updateQueue(quiet, { events: true })
          const recorded = yield* queues.send(quiet, "recorded")
          expect(yield* collect(queues, quiet, 1, 0)).toEqual([`sent ${recorded}`])
        })
    )

    it.effect("bad input is typed: a missing queue, a negative since, a bad poll interval", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const name = uniqueName("events-invalid")
        yield* queues.createQueue(name, { events: true })
        expect(yield* Effect.flip(Stream.runDrain(queues.events(`${name}-missing`)))).toMatchObject({
          _tag: "QueueNotFound"
        })
        expect(yield* Effect.flip(Stream.runDrain(queues.events(name, { since: -1 })))).toMatchObject({
          _tag: "InvalidOption",
          option: "since"
        })
        expect(
          yield* Effect.flip(Stream.runDrain(queues.events(name, { pollInterval: "2 hours" })))
        ).toMatchObject({ _tag: "InvalidOption", option: "pollInterval" })
        expect(
          yield* Effect.flip(queues.createQueue(`${name}-2`, { events: "yes" as unknown as boolean }))
        ).toMatchObject({
          _tag: "InvalidOption",
          option: "events"
        })
      })
    )
  })
}

/** The event log's triggers the database holds now. */
const eventTriggerCount = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(
    sql.onDialectOrElse({
      pg: () =>
        sql<{ n: number }>`SELECT COUNT(*) AS n FROM pg_trigger WHERE tgname LIKE 'keel_queue_events_%'`,
      orElse: () =>
        sql<{
          n: number
        }>`SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'keel_queue_events_%'`
    }),
    (rows) => Number(rows[0]?.n ?? 0)
  )
)

for (const kind of TestDatabase.kinds) {
  layer(queueLayer(kind), { timeout: 60_000, excludeTestServices: true })(
    `event triggers [${kind}]`,
    (it) => {
      it.effect(
        "a database has the event triggers only once a queue records events; that queue's first change is recorded",
        () =>
          Effect.gen(function* () {
            const queues = yield* Queue.Queues
            const name = uniqueName("events-triggers")
            yield* queues.createQueue(name)
            yield* queues.send(name, "unrecorded")
            // No queue records events: writes pay nothing for the log.
            expect(yield* eventTriggerCount).toBe(0)
            yield* queues.updateQueue(name, { events: true })
            expect(yield* eventTriggerCount).toBeGreaterThan(0)
            const id = yield* queues.send(name, "recorded")
            expect(
              (yield* queues.readEvents(name)).map((event) => `${event.type} ${event.messageId}`)
            ).toEqual([`sent ${id}`])
          })
      )
    }
  )
}

const processes = (kind: TestDatabase.Kind) =>
  layer(queueLayer(kind), { timeout: 180_000, excludeTestServices: true })((it) => {
    it.scoped("4 consumer processes: a reader here sees every event exactly once, in id order", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const info = yield* TestDatabase.TestDatabase
        const name = uniqueName("events-processes")
        yield* queues.createQueue(name, { events: true })
        const count = 60
        const reader = yield* Effect.fork(
          Stream.runCollect(
            Stream.take(queues.events(name, { since: 0, pollInterval: "50 millis" }), count * 3)
          )
        )
        const consumers = yield* Effect.forEach([0, 1, 2, 3], () =>
          Processes.spawn({ script: fixture("consumer"), args: [info.dsn, name, "0-2", "4", "5000", "25"] })
        )
        yield* eventually(
          "every consumer to start",
          Effect.sync(() => consumers.every((c) => c.stdout().includes("READY"))),
          "60 seconds"
        )
        const ids = yield* queues.sendBatch(
          name,
          Array.from({ length: count }, (_, i) => ({ payload: i }))
        )
        const events = Chunk.toReadonlyArray(yield* Fiber.join(reader))
        const positions = events.map((event) => event.id)
        expect(positions).toEqual([...positions].sort((a, b) => a - b))
        expect(new Set(positions).size).toBe(positions.length)
        for (const id of ids) {
          expect(events.filter((event) => event.messageId === id).map((event) => event.type)).toEqual([
            "sent",
            "leased",
            "acknowledged"
          ])
        }
        console.log(`event log across processes [${kind}]: ${events.length} events of ${count} messages`)
      })
    )
  })

describe("event log across processes", () => {
  for (const kind of TestDatabase.kinds) if (kind === "sqlite" || kind === "postgres") processes(kind)
})
