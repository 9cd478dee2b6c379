/**
 * The queue's semantics over a store, run on the in-memory store and on SQLite side by side: the
 * same calls give the same outcomes, so tests of consumers, the CLI or the HTTP API can use the
 * memory store and mean the SQL one.
 */
import { expect, layer } from "@effect/vitest"
import { Queue, QueueStore } from "@keel/queue"
import { Database } from "@keel/sql"
import { Effect, Layer } from "effect"
import { consumeUntil, uniqueName } from "./support/QueueTest.js"

const stores = {
  memory: Queue.layerStore().pipe(Layer.provide(QueueStore.layerMemory)),
  sqlite: Queue.layer().pipe(Layer.provide(Database.layer(":memory:")))
}

for (const [store, queueLayer] of Object.entries(stores)) {
  layer(queueLayer, { timeout: 60_000, excludeTestServices: true })(`Queue semantics [${store}]`, (it) => {
    it.effect("send, read in priority order, archive: the archive keeps it, the queue is empty", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const name = uniqueName("basics")
        yield* queues.createQueue(name)
        const low = yield* queues.send(name, { n: 1 }, { priority: 5 })
        const high = yield* queues.send(name, { n: 2 }, { priority: -5 })
        const [first, second] = yield* queues.read(name, { qty: 2 })
        expect([first?.id, second?.id]).toEqual([high, low])
        expect(first?.deliveries).toBe(1)
        if (first === undefined || second === undefined) return yield* Effect.die("not leased")
        yield* queues.archive(name, first)
        yield* queues.delete(name, second)
        expect((yield* queues.listArchive(name)).map((m) => m.id)).toEqual([high])
        expect(yield* queues.metrics(name)).toMatchObject({ depth: 0, inFlight: 0, archived: 1, dead: 0 })
        expect((yield* Effect.flip(queues.archive(name, first)))._tag).toBe("LeaseLost")
      })
    )

    it.effect("a dedup key yields the same message; a delayed message is invisible until its time", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const name = uniqueName("keys")
        yield* queues.createQueue(name)
        const id = yield* queues.send(name, "once", { dedupKey: "k" })
        expect(yield* queues.send(name, "twice", { dedupKey: "k" })).toBe(id)
        yield* queues.send(name, "later", { delay: "1 hour" })
        expect((yield* queues.read(name, { qty: 10 })).map((m) => m.payload)).toEqual(["once"])
        expect(yield* queues.metrics(name)).toMatchObject({ inFlight: 1, delayed: 1 })
      })
    )

    it.effect("a release with an error at max deliveries dead-letters; requeue brings it back fresh", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const name = uniqueName("dead")
        yield* queues.createQueue(name, { maxDeliveries: 2 })
        const id = yield* queues.send(name, "poison")
        const [first] = yield* queues.read(name)
        if (first === undefined) return yield* Effect.die("not leased")
        expect(yield* queues.release(name, first, { error: "boom" })).toBe("released")
        const [second] = yield* queues.read(name)
        if (second === undefined) return yield* Effect.die("not leased again")
        expect(second.lastError).toBe("boom")
        expect(yield* queues.release(name, second, { error: "boom again" })).toBe("dead")
        const [letter] = yield* queues.deadLetters(name)
        expect(letter).toMatchObject({ id, dead: true, lastError: "boom again", deliveries: 2 })
        expect(yield* queues.requeueDead(name)).toEqual([id])
        expect((yield* queues.read(name))[0]).toMatchObject({ id, deliveries: 1 })
      })
    )

    it.effect(
      "a batch acknowledgement with a lost lease changes nothing; deleting a busy queue is refused",
      () =>
        Effect.gen(function* () {
          const queues = yield* Queue.Queues
          const name = uniqueName("atomic")
          yield* queues.createQueue(name)
          yield* queues.sendBatch(name, [{ payload: 1 }, { payload: 2 }])
          const leased = yield* queues.read(name, { qty: 2 })
          const [one] = leased
          if (one === undefined) return yield* Effect.die("not leased")
          yield* queues.release(name, one)
          const error = yield* Effect.flip(queues.archiveBatch(name, leased))
          expect(error).toMatchObject({ _tag: "LeaseLost", messageIds: [one.id] })
          expect((yield* queues.metrics(name)).archived).toBe(0)
          expect((yield* Effect.flip(queues.deleteQueue(name)))._tag).toBe("QueueInFlight")
          expect(yield* queues.deleteQueue(name, { force: true })).toMatchObject({ messages: 2 })
        })
    )

    it.effect("a consumer handles every message once and dead-letters the one that keeps failing", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const name = uniqueName("consumer")
        yield* queues.createQueue(name, { maxDeliveries: 2 })
        yield* queues.sendBatch(
          name,
          Array.from({ length: 30 }, (_, i) => ({ payload: i }))
        )
        const { stats } = yield* consumeUntil(
          queues,
          name,
          31,
          { concurrency: 3, pollInterval: "20 millis", backoff: { initial: "1 millis", max: "2 millis" } },
          (message) => (message.payload === 7 ? Effect.fail(new Error("always fails")) : Effect.void)
        )
        expect(stats).toMatchObject({ processed: 29, failed: 2, deadLettered: 1 })
        expect(yield* queues.metrics(name)).toMatchObject({ depth: 0, inFlight: 0, archived: 29, dead: 1 })
        expect(yield* queues.listWorkers(name)).toEqual([])
      })
    )
  })
}
