/**
 * What an operator browses and fixes (the dashboard's calls), on every backend and the memory store:
 * a queue's messages by state, paged by id; dead letters deleted for good (by id or the oldest N,
 * other queues' and live messages untouched); and each worker's own timeout and live leases.
 */
import { describe, expect, it, layer } from "@effect/vitest"
import { Queue } from "@keel/queue"
import { Duration, Effect, Exit, Scope, TestClock } from "effect"
import { storeLayer, stores, uniqueName, withTestClock } from "./support/QueueTest.js"

for (const store of stores) {
  layer(storeLayer(store), { timeout: 120_000, excludeTestServices: true })(`browsing [${store}]`, (it) => {
    it.effect("messages by state, oldest id first, paged with after; a missing queue is QueueNotFound", () =>
      withTestClock(
        Effect.gen(function* () {
          const queues = yield* Queue.Queues
          const name = uniqueName("browse")
          yield* queues.createQueue(name)
          const ready = yield* Effect.forEach([1, 2, 3], (n) => queues.send(name, { n }))
          const delayed = yield* queues.send(name, { n: 4 }, { delay: "1 hour" })
          const [leased] = yield* queues.read(name, { visibilityTimeout: "10 minutes" })
          expect(leased?.id).toBe(ready[0])
          const ids = (state: "queued" | "delayed" | "leased", after?: number, limit?: number) =>
            Effect.map(queues.listMessages(name, { state, after, limit }), (messages) =>
              messages.map((message) => [message.id, message.state])
            )
          expect(yield* ids("queued")).toEqual([
            [ready[1], "queued"],
            [ready[2], "queued"]
          ])
          expect(yield* ids("queued", ready[1])).toEqual([[ready[2], "queued"]])
          expect(yield* ids("queued", undefined, 1)).toEqual([[ready[1], "queued"]])
          expect(yield* ids("delayed")).toEqual([[delayed, "delayed"]])
          expect(yield* ids("leased")).toEqual([[ready[0], "leased"]])
          const [shown] = yield* queues.listMessages(name, { state: "leased" })
          expect(shown?.payload).toEqual({ n: 1 })
          // The default is the queued ones; a lease that runs out makes its message queued again.
          yield* TestClock.adjust("11 minutes")
          expect((yield* queues.listMessages(name)).map((m) => m.id)).toEqual(ready)
          expect(yield* Effect.flip(queues.listMessages(uniqueName("missing")))).toMatchObject({
            _tag: "QueueNotFound"
          })
          // @ts-expect-error a wire caller may send anything
          expect(yield* Effect.flip(queues.listMessages(name, { state: "ready" }))).toMatchObject({
            _tag: "InvalidOption",
            option: "state"
          })
        })
      )
    )

    it.effect("dead letters are deleted by id or oldest first; nothing else is touched", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const name = uniqueName("dead")
        const other = uniqueName("other")
        yield* queues.createQueue(name, { maxDeliveries: 1 })
        yield* queues.createQueue(other, { maxDeliveries: 1 })
        const kill = (queue: string, count: number) =>
          Effect.gen(function* () {
            const ids = yield* queues.sendBatch(
              queue,
              Array.from({ length: count }, (_, payload) => ({ payload }))
            )
            const leased = yield* queues.read(queue, { qty: count })
            yield* queues.releaseBatch(queue, leased, { error: "boom" })
            return ids
          })
        const dead = yield* kill(name, 4)
        const otherDead = yield* kill(other, 1)
        const live = yield* queues.send(name, "live")
        expect(yield* queues.deleteDead(name, { ids: [dead[2] ?? 0, otherDead[0] ?? 0, live] })).toEqual([
          dead[2]
        ])
        expect(yield* queues.deleteDead(name, { limit: 2 })).toEqual([dead[0], dead[1]])
        expect((yield* queues.deadLetters(name)).map((m) => m.id)).toEqual([dead[3]])
        expect((yield* queues.deadLetters(other)).map((m) => m.id)).toEqual(otherDead)
        expect((yield* queues.listMessages(name)).map((m) => m.id)).toEqual([live])
        expect(yield* queues.deleteDead(name)).toEqual([dead[3]])
        expect(yield* queues.deleteDead(name)).toEqual([])
        expect(yield* Effect.flip(queues.deleteDead(name, { ids: [0] }))).toMatchObject({
          _tag: "InvalidOption",
          option: "ids[0]"
        })
        expect(yield* Effect.flip(queues.deleteDead(uniqueName("missing")))).toMatchObject({
          _tag: "QueueNotFound"
        })
      })
    )

    it.effect("a worker shows its own timeout and the messages it holds a live lease on", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const name = uniqueName("workers")
        yield* queues.createQueue(name)
        yield* queues.sendBatch(name, [{ payload: 1 }, { payload: 2 }, { payload: 3 }])
        const scope = yield* Scope.make()
        const worker = yield* Scope.extend(
          queues.registerWorker({ queue: name, workerId: `w-${name}`, workerTimeout: "45 seconds" }),
          scope
        )
        yield* queues.read(name, { qty: 2, workerId: worker.id, visibilityTimeout: "1 hour" })
        yield* queues.read(name, { visibilityTimeout: "1 hour" })
        const [listed] = yield* queues.listWorkers(name)
        expect(listed?.id).toBe(worker.id)
        expect(listed === undefined ? undefined : Duration.toMillis(listed.timeout)).toBe(45_000)
        expect(listed?.inFlight).toBe(2)
        yield* Scope.close(scope, Exit.void)
      })
    )
  })
}

describe("browsing needs no database to describe", () => {
  it.effect("the option schema refuses a page size above 1,000", () =>
    Effect.gen(function* () {
      expect(
        yield* Effect.flip(Queue.Queues.pipe(Effect.flatMap((q) => q.listMessages("x", { limit: 1001 }))))
      ).toMatchObject({
        option: "limit"
      })
    }).pipe(Effect.provide(storeLayer("memory")))
  )
})
