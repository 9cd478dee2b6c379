/**
 * A message by id as it is now (`getMessage`: queued, delayed or leased) and the progress its
 * handler reports (`progress`, lease-checked), on every backend and the memory store.
 */
import { expect, layer } from "@effect/vitest"
import { Queue } from "@keel/queue"
import { Deferred, Effect, TestClock } from "effect"
import { storeLayer, stores, uniqueName, withTestClock } from "./support/QueueTest.js"

for (const store of stores) {
  layer(storeLayer(store), { timeout: 120_000, excludeTestServices: true })(
    `messages by id [${store}]`,
    (it) => {
      it.effect("getMessage shows where a message is, its deliveries and the progress last reported", () =>
        withTestClock(
          Effect.gen(function* () {
            const queues = yield* Queue.Queues
            const name = uniqueName("show")
            yield* queues.createQueue(name, { maxDeliveries: 4 })
            const id = yield* queues.send(name, { job: 1 }, { priority: 2 })
            const later = yield* queues.send(name, "later", { delay: "1 hour", maxDeliveries: 9 })
            expect(yield* queues.getMessage(name, id)).toMatchObject({
              id,
              payload: { job: 1 },
              priority: 2,
              state: "queued",
              deliveries: 0,
              maxDeliveries: 4,
              progress: null
            })
            expect(yield* queues.getMessage(name, later)).toMatchObject({
              state: "delayed",
              maxDeliveries: 9
            })
            const [lease] = yield* queues.read(name, { visibilityTimeout: "10 seconds" })
            if (lease === undefined) return yield* Effect.die("not leased")
            yield* queues.progress(name, lease, { step: "resize", done: 3, of: 10 })
            yield* queues.progress(name, lease, { step: "resize", done: 7, of: 10 })
            expect(yield* queues.getMessage(name, id)).toMatchObject({
              state: "leased",
              deliveries: 1,
              progress: { step: "resize", done: 7, of: 10 }
            })
            // Its lease runs out and another reader takes it: the old holder can no longer report.
            yield* TestClock.adjust("11 seconds")
            expect((yield* queues.read(name)).map((m) => m.id)).toEqual([id])
            expect(yield* Effect.flip(queues.progress(name, lease, { done: 8 }))).toMatchObject({
              _tag: "LeaseLost"
            })
            expect((yield* queues.getMessage(name, id)).progress).toEqual({ step: "resize", done: 7, of: 10 })
            expect(yield* Effect.flip(queues.getMessage(name, 999_999_999))).toMatchObject({
              _tag: "MessageNotFound"
            })
            expect(yield* Effect.flip(queues.getMessage("no-such-queue", id))).toMatchObject({
              _tag: "QueueNotFound"
            })
          })
        )
      )

      it.effect("progress must be JSON of at most 4 KiB; a bad value changes nothing", () =>
        Effect.gen(function* () {
          const queues = yield* Queue.Queues
          const name = uniqueName("progress-invalid")
          yield* queues.createQueue(name)
          const id = yield* queues.send(name, "x")
          const [lease] = yield* queues.read(name)
          if (lease === undefined) return yield* Effect.die("not leased")
          for (const value of ["y".repeat(5_000), undefined, { n: Number.NaN }]) {
            expect(yield* Effect.flip(queues.progress(name, lease, value))).toMatchObject({
              _tag: "InvalidOption",
              option: "progress"
            })
          }
          expect((yield* queues.getMessage(name, id)).progress).toBeNull()
        })
      )

      it.effect("a consumer's handler reports progress that another fiber reads while it runs", () =>
        Effect.gen(function* () {
          const queues = yield* Queue.Queues
          const name = uniqueName("progress-consumer")
          yield* queues.createQueue(name)
          const id = yield* queues.send(name, "work")
          const reported = yield* Deferred.make<void>()
          const finish = yield* Deferred.make<void>()
          yield* Effect.scoped(
            Effect.gen(function* () {
              yield* queues.consume(
                name,
                (message) =>
                  Effect.zipRight(
                    Effect.zipRight(
                      queues.progress(name, message, { pct: 50 }),
                      Deferred.succeed(reported, undefined)
                    ),
                    Deferred.await(finish)
                  ),
                { pollInterval: 50 }
              )
              yield* Deferred.await(reported)
              expect(yield* queues.getMessage(name, id)).toMatchObject({
                state: "leased",
                progress: { pct: 50 }
              })
              yield* Deferred.succeed(finish, undefined)
            })
          )
        })
      )
    }
  )
}
