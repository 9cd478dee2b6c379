/**
 * A retry policy per message — `maxDeliveries` and `backoff` set at send time — on every backend
 * and the memory store: it is dead-lettered after its own deliveries (on a failed release and when
 * its lease runs out), a dead letter requeued keeps it, the consumer waits its backoff, and bad
 * policies are `InvalidOption`s naming the field.
 */
import { describe, expect, it, layer } from "@effect/vitest"
import { Backoff, type Consumer, Queue } from "@keel/queue"
import { Effect, FastCheck, Ref, TestClock } from "effect"
import { consumeUntil, storeLayer, stores, uniqueName, withTestClock } from "./support/QueueTest.js"

describe("Backoff.delayOf", () => {
  it("exponential doubles, linear adds, fixed stays; each capped at max", () => {
    const exact = { base: 100, max: 1_000, jitter: 0 }
    const delays = (kind: "exponential" | "linear" | "fixed") =>
      [1, 2, 3, 4, 5].map((n) => Backoff.delayOf({ kind, ...exact }, n, 0.5))
    expect(delays("exponential")).toEqual([100, 200, 400, 800, 1_000])
    expect(delays("linear")).toEqual([100, 200, 300, 400, 500])
    expect(delays("fixed")).toEqual([100, 100, 100, 100, 100])
  })

  it.prop(
    "jitter takes off at most its fraction, never adds",
    [
      FastCheck.integer({ min: 1, max: 60 }),
      FastCheck.double({ min: 0, max: 1, noNaN: true }),
      FastCheck.double({ min: 0, max: 1, maxExcluded: true, noNaN: true })
    ],
    ([deliveries, jitter, random]) => {
      const backoff = { kind: "exponential" as const, base: 1_000, max: 60_000, jitter }
      const full = Backoff.delayOf({ ...backoff, jitter: 0 }, deliveries, random)
      const delay = Backoff.delayOf(backoff, deliveries, random)
      return delay <= full && delay >= Math.floor(full * (1 - jitter)) - 1
    }
  )
})

for (const store of stores) {
  layer(storeLayer(store), { timeout: 120_000, excludeTestServices: true })(
    `retry policy per message [${store}]`,
    (it) => {
      it.effect(
        "a message's own maxDeliveries dead-letters it on a failed release; others keep the queue's",
        () =>
          Effect.gen(function* () {
            const queues = yield* Queue.Queues
            const name = uniqueName("max")
            yield* queues.createQueue(name, { maxDeliveries: 5 })
            const own = yield* queues.send(name, "own", {
              maxDeliveries: 2,
              backoff: { kind: "linear", base: "2 seconds", jitter: 0 }
            })
            const plain = yield* queues.send(name, "plain")
            const first = yield* queues.read(name, { qty: 2 })
            expect(first.map((m) => [m.id, m.maxDeliveries, m.backoff])).toEqual([
              [own, 2, { kind: "linear", base: 2_000, max: 300_000, jitter: 0 }],
              [plain, 5, null]
            ])
            for (const message of first)
              expect(yield* queues.release(name, message, { error: "boom" })).toBe("released")
            const second = yield* queues.read(name, { qty: 2 })
            const outcomes = yield* Effect.forEach(second, (message) =>
              queues.release(name, message, { error: "again" })
            )
            expect(new Map(second.map((m, index) => [m.id, outcomes[index]]))).toEqual(
              new Map([
                [own, "dead"],
                [plain, "released"]
              ])
            )
            const [dead] = yield* queues.deadLetters(name)
            expect(dead).toMatchObject({ id: own, lastError: "again", deliveries: 2 })
          })
      )

      it.effect(
        "a lease that runs out past the message's own maxDeliveries dead-letters it, naming them",
        () =>
          withTestClock(
            Effect.gen(function* () {
              const queues = yield* Queue.Queues
              const name = uniqueName("expire")
              yield* queues.createQueue(name, { maxDeliveries: 10 })
              const id = yield* queues.send(name, "once", { maxDeliveries: 1 })
              yield* queues.read(name, { visibilityTimeout: "1 second" })
              yield* TestClock.adjust("2 seconds")
              expect(yield* queues.read(name)).toEqual([])
              const [dead] = yield* queues.deadLetters(name)
              expect(dead).toMatchObject({ id, lastError: "not acknowledged after 1 deliveries" })
              // Requeued, it keeps its own policy.
              expect(yield* queues.requeueDead(name, { ids: [id] })).toEqual([id])
              const [again] = yield* queues.read(name)
              expect(again).toMatchObject({ id, maxDeliveries: 1, backoff: null, deliveries: 1 })
            })
          )
      )

      it.effect("the consumer waits the message's own backoff, and its own for the rest", () =>
        Effect.gen(function* () {
          const queues = yield* Queue.Queues
          const name = uniqueName("consumer")
          yield* queues.createQueue(name)
          yield* queues.send(name, "fast", { backoff: { kind: "fixed", base: 20, jitter: 0 } })
          yield* queues.send(name, "slow")
          const failed = yield* Ref.make<ReadonlyArray<readonly [unknown, number]>>([])
          const attempts = yield* Ref.make(new Map<number, number>())
          const options: Consumer.ConsumeOptions = {
            concurrency: 2,
            pollInterval: 10,
            backoff: { initial: "1 hour" },
            onEvent: (event) =>
              event._tag === "Failed"
                ? Ref.update(failed, (all) => [...all, [event.message.payload, event.delay] as const])
                : Effect.void
          }
          // Each fails its first delivery; "fast" comes back 20 ms later, "slow" an hour later.
          yield* consumeUntil(queues, name, 3, options, (message) =>
            Effect.flatMap(
              Ref.modify(attempts, (seen) => {
                const n = (seen.get(message.id) ?? 0) + 1
                return [n, new Map(seen).set(message.id, n)]
              }),
              (n) => (n === 1 ? Effect.fail("first delivery fails") : Effect.void)
            )
          )
          const delays = new Map(yield* Ref.get(failed))
          expect(delays.get("fast")).toBe(20)
          expect(delays.get("slow")).toBeGreaterThanOrEqual(0.75 * 3_600_000)
          expect(yield* queues.metrics(name)).toMatchObject({ delayed: 1, archived: 1 })
        })
      )

      it.effect("bad policies are InvalidOption naming the field; nothing is stored", () =>
        Effect.gen(function* () {
          const queues = yield* Queue.Queues
          const name = uniqueName("invalid")
          yield* queues.createQueue(name)
          const cases = [
            [{ maxDeliveries: 0 }, "maxDeliveries"],
            [{ maxDeliveries: 1001 }, "maxDeliveries"],
            [{ maxDeliveries: 1.5 }, "maxDeliveries"],
            [{ backoff: { kind: "random" as never } }, "backoff.kind"],
            [{ backoff: { base: -1 } }, "backoff.base"],
            [{ backoff: { base: "1 minute", max: "1 second" } }, "backoff.max"],
            [{ backoff: { jitter: 2 } }, "backoff.jitter"],
            [{ backoff: { jitter: Number.NaN } }, "backoff.jitter"]
          ] as const
          for (const [options, option] of cases) {
            expect(yield* Effect.flip(queues.send(name, 1, options))).toMatchObject({
              _tag: "InvalidOption",
              option
            })
          }
          expect(
            yield* Effect.flip(
              queues.sendBatch(name, [{ payload: 1 }, { payload: 2, backoff: { kind: "fixed", jitter: -1 } }])
            )
          ).toMatchObject({ _tag: "InvalidOption", option: "messages[1].backoff.jitter" })
          expect(yield* queues.metrics(name)).toMatchObject({ depth: 0, delayed: 0 })
        })
      )
    }
  )
}
