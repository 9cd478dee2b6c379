/**
 * The batched hot path on every backend: claims of many messages at once never lease a message
 * twice and skip none; acknowledgements and sends of many callers that share one transaction (or,
 * on PostgreSQL, one statement) each get their own outcome — a lost lease fails only its message,
 * a missing queue only its send.
 */
import { expect, layer } from "@effect/vitest"
import { Queue, Schemas, SqlQueueStore } from "@keel/queue"
import { TestDatabase } from "@keel/testkit"
import { Cause, Effect, Exit, Option } from "effect"
import {
  archiveRows,
  consumeUntil,
  messageRows,
  layer as queueLayer,
  uniqueName
} from "./support/QueueTest.js"

/** The failure tag of an exit, or "ok". */
const outcome = <A, E>(exit: Exit.Exit<A, E>): string => {
  if (Exit.isSuccess(exit)) return "ok"
  const failure = Cause.failureOption(exit.cause)
  return Option.isSome(failure) && typeof failure.value === "object" && failure.value !== null
    ? String((failure.value as { readonly _tag?: unknown })._tag)
    : "defect"
}

const duplicates = (ids: ReadonlyArray<number>): ReadonlyArray<number> =>
  ids.filter((id, index) => ids.indexOf(id) !== index)

TestDatabase.describeEach("Queue batches", (kind) => {
  layer(queueLayer(kind), { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("readers claiming in batches at once never lease a message twice and skip none", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const name = uniqueName("claims")
        yield* queues.createQueue(name, { visibilityTimeout: "1 hour" })
        const sent = yield* queues.sendBatch(
          name,
          Array.from({ length: 200 }, (_, i) => ({ payload: i }))
        )
        const reader = Effect.gen(function* () {
          const taken: Array<number> = []
          while (true) {
            const batch = yield* queues.read(name, { qty: 7 })
            if (batch.length === 0) return taken
            taken.push(...batch.map((message) => message.id))
          }
        })
        const taken = (yield* Effect.all(
          Array.from({ length: 6 }, () => reader),
          { concurrency: "unbounded" }
        )).flat()
        expect(duplicates(taken)).toEqual([])
        expect([...taken].sort((a, b) => a - b)).toEqual([...sent].sort((a, b) => a - b))
      })
    )

    it.effect("a consumer claiming ahead (prefetch) handles every message exactly once", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const name = uniqueName("prefetch")
        yield* queues.createQueue(name)
        const sent = yield* queues.sendBatch(
          name,
          Array.from({ length: 300 }, (_, i) => ({ payload: i }))
        )
        const { seen: ids, stats } = yield* consumeUntil(queues, name, sent.length, {
          concurrency: 4,
          prefetch: 32,
          pollInterval: "50 millis"
        })
        expect(duplicates(ids)).toEqual([])
        expect([...ids].sort((a, b) => a - b)).toEqual([...sent].sort((a, b) => a - b))
        expect(stats).toMatchObject({ processed: sent.length, leaseLost: 0 })
        expect(yield* messageRows(name)).toBe(0)
        expect(yield* archiveRows(name)).toBe(sent.length)
      })
    )

    it.scoped(
      "acknowledging a batch of leases one by one: a lost lease is reported for that message only",
      () =>
        Effect.gen(function* () {
          const queues = yield* Queue.Queues
          const store = yield* SqlQueueStore.make()
          const name = uniqueName("ack-batch")
          yield* queues.createQueue(name)
          yield* queues.sendBatch(
            name,
            Array.from({ length: 5 }, (_, i) => ({ payload: i }))
          )
          const leased = yield* queues.read(name, { qty: 5 })
          const stolen = leased[2]
          if (stolen === undefined) return yield* Effect.die("fewer than 5 messages leased")
          // Its lease moves on: released, then leased again by someone else.
          yield* queues.release(name, stolen)
          const [again] = yield* queues.read(name)
          expect(again?.id).toBe(stolen.id)
          const settled = yield* store.settle(name, {
            leases: leased.map((message) => ({ id: message.id, lease: message.lease })),
            settlement: { _tag: "Archive" },
            atomic: false,
            now: Date.now()
          })
          expect(settled?.lost).toEqual([stolen.id])
          expect(yield* archiveRows(name)).toBe(4)
          // The stolen message is still leased by its new holder.
          expect(yield* messageRows(name)).toBe(1)
          if (again !== undefined) yield* queues.archive(name, again)
          expect(yield* archiveRows(name)).toBe(5)
        })
    )

    it.effect("a consumer whose batch of acknowledgements holds a lost lease acknowledges the rest", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const name = uniqueName("consumer-lost")
        yield* queues.createQueue(name)
        yield* queues.sendBatch(
          name,
          Array.from({ length: 20 }, (_, i) => ({ payload: i }))
        )
        // Message 5 loses its lease while its handler runs (as if another process's maintenance
        // had released it), but the handler still succeeds.
        const { stats } = yield* consumeUntil(
          queues,
          name,
          20,
          { concurrency: 4, pollInterval: "50 millis" },
          (message) =>
            message.payload === 5
              ? Effect.asVoid(queues.release(name, message, { delay: "1 hour" }))
              : Effect.void
        )
        expect(stats).toMatchObject({ processed: 19, leaseLost: 1 })
        expect(yield* archiveRows(name)).toBe(19)
        expect((yield* queues.metrics(name)).delayed).toBe(1)
      })
    )

    it.effect("single acknowledgements at once each get their own outcome: lost leases fail alone", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const name = uniqueName("acks-at-once")
        yield* queues.createQueue(name)
        yield* queues.sendBatch(
          name,
          Array.from({ length: 10 }, (_, i) => ({ payload: i }))
        )
        const leased = yield* queues.read(name, { qty: 10 })
        const lost = new Set([leased[3]?.id, leased[7]?.id])
        for (const message of leased) {
          if (lost.has(message.id)) yield* queues.release(name, message, { delay: "1 hour" })
        }
        const exits = yield* Effect.forEach(
          leased,
          (message: Schemas.Leased, index) =>
            Effect.exit(index % 2 === 0 ? queues.archive(name, message) : queues.delete(name, message)),
          { concurrency: "unbounded" }
        )
        expect(exits.map(outcome)).toEqual(
          leased.map((message) => (lost.has(message.id) ? "LeaseLost" : "ok"))
        )
        // Even indexes were archived (0, 2, 4, 6, 8), odd ones deleted; 3 and 7 were lost.
        expect(yield* archiveRows(name)).toBe(5)
        expect(yield* messageRows(name)).toBe(2)
      })
    )

    it.effect("a batch of the largest size, every message with every column, is stored in order", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const name = uniqueName("batch-max")
        yield* queues.createQueue(name)
        // Each message fills every column of its row: the statement's chunks must stay under the
        // backend's bind-parameter limit (SQLite's 32,766) however many columns a row has.
        const ids = yield* queues.sendBatch(
          name,
          Array.from({ length: Schemas.maxBatchSize }, (_, i) => ({
            payload: i,
            priority: i % 5,
            group: `g${i % 97}`,
            maxDeliveries: 3,
            backoff: { kind: "fixed" as const, base: "1 second" }
          }))
        )
        expect(ids).toHaveLength(Schemas.maxBatchSize)
        expect([...ids].sort((a, b) => a - b)).toEqual(ids)
        const last = ids[ids.length - 1]
        if (last === undefined) return yield* Effect.die("no ids")
        expect((yield* queues.getMessage(name, last)).payload).toBe(Schemas.maxBatchSize - 1)
      })
    )

    it.effect("single sends at once each get their own id; a send to a missing queue fails alone", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const first = uniqueName("sends-a")
        const second = uniqueName("sends-b")
        yield* queues.createQueue(first)
        yield* queues.createQueue(second)
        const targets = Array.from({ length: 21 }, (_, i) =>
          i === 10 ? `${first}-missing` : i % 2 === 0 ? first : second
        )
        const exits = yield* Effect.forEach(
          targets,
          (queue, i) => Effect.exit(queues.send(queue, { i }, { priority: i % 3 })),
          { concurrency: "unbounded" }
        )
        expect(exits.map(outcome)).toEqual(targets.map((_, i) => (i === 10 ? "QueueNotFound" : "ok")))
        const ids = exits.flatMap((exit) => (Exit.isSuccess(exit) ? [exit.value] : []))
        expect(duplicates(ids)).toEqual([])
        expect(yield* messageRows(first)).toBe(10)
        expect(yield* messageRows(second)).toBe(10)
        // Each id names the message that was sent with it.
        const read = yield* queues.read(first, { qty: 20 })
        for (const message of read) {
          const index = exits.findIndex((exit) => Exit.isSuccess(exit) && exit.value === message.id)
          expect(message.payload).toEqual({ i: index })
          expect(message.priority).toBe(index % 3)
        }
      })
    )
  })
})
