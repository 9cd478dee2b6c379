import { expect, layer } from "@effect/vitest"
import { Metrics, Queue, type Schemas } from "@keel/queue"
import { TestDatabase } from "@keel/testkit"
import { DateTime, Duration, Effect, Metric, TestClock } from "effect"
import {
  archiveRows,
  fingerprint,
  messageRows,
  layer as queueLayer,
  uniqueName,
  withTestClock
} from "./support/QueueTest.js"

/** The only message of a read, or a defect. */
const one = (messages: ReadonlyArray<Schemas.Leased>) =>
  messages.length === 1 && messages[0] !== undefined
    ? Effect.succeed(messages[0])
    : Effect.dieMessage(`expected one message, got ${messages.length}`)

TestDatabase.describeEach("Queue contract: leases", (kind) => {
  layer(queueLayer(kind), { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect(
      "read leases up to qty messages once: fresh token, visibility timeout, delivery count, worker",
      () =>
        withTestClock(
          Effect.gen(function* () {
            const queues = yield* Queue.Queues
            const name = uniqueName("lease")
            yield* queues.createQueue(name, { visibilityTimeout: "30 seconds" })
            yield* queues.sendBatch(
              name,
              Array.from({ length: 5 }, (_, i) => ({ payload: i }))
            )
            const first = yield* queues.read(name, {
              qty: 3,
              workerId: "worker-a",
              visibilityTimeout: "10 seconds"
            })
            expect(first.length).toBe(3)
            for (const message of first) {
              expect(message.deliveries).toBe(1)
              expect(message.workerId).toBe("worker-a")
              expect(
                DateTime.toEpochMillis(message.visibleAt) - DateTime.toEpochMillis(message.leasedAt)
              ).toBe(10_000)
            }
            const second = yield* queues.read(name, { qty: 10 })
            expect(second.length).toBe(2)
            expect(second[0]?.lease).not.toBe(first[0]?.lease)
            expect(new Set([...first, ...second].map((m) => m.id)).size).toBe(5)
            expect(yield* queues.read(name, { qty: 10 })).toEqual([])
            expect(yield* queues.metrics(name)).toMatchObject({ depth: 0, inFlight: 5, delayed: 0 })
          })
        )
    )

    it.effect(
      "an expired lease makes the message visible again; the old lease is then LeaseLost everywhere",
      () =>
        withTestClock(
          Effect.gen(function* () {
            const queues = yield* Queue.Queues
            const name = uniqueName("expired")
            yield* queues.createQueue(name)
            yield* queues.send(name, "job")
            const stale = yield* one(yield* queues.read(name, { visibilityTimeout: "5 seconds" }))
            yield* TestClock.adjust(Duration.millis(4_999))
            expect(yield* queues.read(name)).toEqual([])
            yield* TestClock.adjust(Duration.millis(1))
            const fresh = yield* one(yield* queues.read(name, { visibilityTimeout: "5 seconds" }))
            expect(fresh.id).toBe(stale.id)
            expect(fresh.deliveries).toBe(2)
            expect(fresh.lease).not.toBe(stale.lease)
            const before = yield* fingerprint
            const attempts = [
              queues.delete(name, stale),
              queues.archive(name, stale),
              queues.release(name, stale),
              queues.extendVisibility(name, stale, { visibilityTimeout: "1 minute" })
            ]
            for (const attempt of attempts) {
              expect(yield* Effect.flip(attempt)).toMatchObject({ _tag: "LeaseLost", messageIds: [stale.id] })
            }
            expect(yield* fingerprint).toEqual(before)
            yield* queues.archive(name, fresh)
            expect(yield* archiveRows(name)).toBe(1)
            expect(yield* Effect.flip(queues.archive(name, fresh))).toMatchObject({ _tag: "LeaseLost" })
          })
        )
    )

    it.effect("extending a lease keeps the message hidden past its first deadline", () =>
      withTestClock(
        Effect.gen(function* () {
          const queues = yield* Queue.Queues
          const name = uniqueName("extend")
          yield* queues.createQueue(name)
          yield* queues.send(name, "long job")
          const leased = yield* one(yield* queues.read(name, { visibilityTimeout: "5 seconds" }))
          yield* TestClock.adjust(Duration.seconds(4))
          const until = yield* queues.extendVisibility(name, leased, { visibilityTimeout: "10 seconds" })
          expect(DateTime.toEpochMillis(until) - DateTime.toEpochMillis(leased.leasedAt)).toBe(14_000)
          yield* TestClock.adjust(Duration.seconds(9))
          expect(yield* queues.read(name)).toEqual([])
          yield* queues.delete(name, leased)
          expect(yield* messageRows(name)).toBe(0)
        })
      )
    )

    it.effect("release makes a message visible again (after a delay) and records the error", () =>
      withTestClock(
        Effect.gen(function* () {
          const queues = yield* Queue.Queues
          const name = uniqueName("release")
          yield* queues.createQueue(name, { maxDeliveries: 10 })
          yield* queues.send(name, "flaky")
          const first = yield* one(yield* queues.read(name))
          expect(
            yield* queues.release(name, first, { delay: "3 seconds", error: "timeout talking to the bank" })
          ).toBe("released")
          expect(yield* queues.read(name)).toEqual([])
          expect((yield* queues.metrics(name)).delayed).toBe(1)
          yield* TestClock.adjust(Duration.seconds(3))
          const second = yield* one(yield* queues.read(name))
          expect(second.lastError).toBe("timeout talking to the bank")
          expect(second.deliveries).toBe(2)
          expect(yield* queues.release(name, second)).toBe("released")
          const third = yield* one(yield* queues.read(name))
          expect(third.deliveries).toBe(3)
          expect(third.lastError).toBe("timeout talking to the bank")
        })
      )
    )

    it.effect(
      "batch acknowledgements are all-or-nothing: one lost lease fails the batch and changes nothing",
      () =>
        withTestClock(
          Effect.gen(function* () {
            const queues = yield* Queue.Queues
            const name = uniqueName("batch-ack")
            yield* queues.createQueue(name)
            yield* queues.sendBatch(name, [{ payload: 1 }, { payload: 2 }, { payload: 3 }])
            const held = yield* queues.read(name, { qty: 2, visibilityTimeout: "1 minute" })
            const expiring = yield* one(yield* queues.read(name, { visibilityTimeout: "1 second" }))
            yield* TestClock.adjust(Duration.seconds(2))
            const thief = yield* one(yield* queues.read(name, { visibilityTimeout: "1 minute" }))
            expect(thief.id).toBe(expiring.id)
            const before = yield* fingerprint
            for (const attempt of [
              queues.archiveBatch(name, [...held, expiring]),
              queues.deleteBatch(name, [...held, expiring]),
              queues.releaseBatch(name, [...held, expiring]),
              queues.extendVisibilityBatch(name, [...held, expiring])
            ]) {
              expect(yield* Effect.flip(attempt)).toMatchObject({
                _tag: "LeaseLost",
                messageIds: [expiring.id]
              })
            }
            expect(yield* fingerprint).toEqual(before)
            yield* queues.archiveBatch(name, held)
            yield* queues.deleteBatch(name, [thief])
            expect(yield* messageRows(name)).toBe(0)
            expect(yield* archiveRows(name)).toBe(2)
            expect(yield* queues.archiveBatch(name, [])).toBeUndefined()
          })
        )
    )

    it.effect("many concurrent readers never lease the same message twice", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const name = uniqueName("concurrent")
        yield* queues.createQueue(name)
        yield* queues.sendBatch(
          name,
          Array.from({ length: 300 }, (_, i) => ({ payload: i }))
        )
        const batches = yield* Effect.forEach(
          Array.from({ length: 12 }, (_, i) => i),
          () =>
            Effect.gen(function* () {
              const got: Array<number> = []
              while (true) {
                const messages = yield* queues.read(name, { qty: 7, visibilityTimeout: "1 minute" })
                if (messages.length === 0) return got
                got.push(...messages.map((m) => m.id))
              }
            }),
          { concurrency: "unbounded" }
        )
        const all = batches.flat()
        expect(all.length).toBe(300)
        expect(new Set(all).size).toBe(300)
      })
    )

    it.effect(
      "a message released with an error after its last allowed delivery is dead-lettered, then requeued",
      () =>
        Effect.gen(function* () {
          const queues = yield* Queue.Queues
          const name = uniqueName("dead")
          yield* queues.createQueue(name, { maxDeliveries: 2 })
          const id = yield* queues.send(name, { job: "poison" }, { priority: 4 })
          const first = yield* one(yield* queues.read(name))
          expect(yield* queues.release(name, first, { error: "boom 1" })).toBe("released")
          const second = yield* one(yield* queues.read(name))
          expect(yield* queues.release(name, second, { error: "boom 2" })).toBe("dead")
          expect(yield* queues.read(name)).toEqual([])
          const dead = yield* queues.deadLetters(name)
          expect(dead.map((m) => [m.id, m.dead, m.lastError, m.deliveries, m.priority])).toEqual([
            [id, true, "boom 2", 2, 4]
          ])
          expect(dead[0]?.payload).toEqual({ job: "poison" })
          expect(yield* queues.metrics(name)).toMatchObject({ depth: 0, dead: 1, archived: 0 })
          expect(yield* queues.requeueDead(name)).toEqual([id])
          const back = yield* one(yield* queues.read(name))
          expect(back.id).toBe(id)
          expect(back.deliveries).toBe(1)
          expect(back.lastError).toBe("boom 2")
          expect(yield* queues.deadLetters(name)).toEqual([])
        })
    )

    it.effect(
      "a message whose lease expired after its last allowed delivery is dead-lettered at the next read",
      () =>
        withTestClock(
          Effect.gen(function* () {
            const queues = yield* Queue.Queues
            const name = uniqueName("dead-expired")
            yield* queues.createQueue(name, { maxDeliveries: 1 })
            const poison = yield* queues.send(name, "crashes the consumer")
            const healthy = yield* queues.send(name, "fine")
            yield* one(yield* queues.read(name, { visibilityTimeout: "1 second" }))
            yield* TestClock.adjust(Duration.seconds(2))
            const next = yield* one(yield* queues.read(name, { qty: 2 }))
            expect(next.id).toBe(healthy)
            const [dead] = yield* queues.deadLetters(name)
            expect(dead?.id).toBe(poison)
            expect(dead?.lastError).toContain("not acknowledged after 1 deliveries")
          })
        )
    )

    it.effect(
      "requeueDead moves only the chosen dead letters; the archive lists acknowledged and dead apart",
      () =>
        Effect.gen(function* () {
          const queues = yield* Queue.Queues
          const name = uniqueName("requeue")
          yield* queues.createQueue(name, { maxDeliveries: 1 })
          const ids = yield* queues.sendBatch(name, [{ payload: "a" }, { payload: "b" }, { payload: "c" }])
          const leased = yield* queues.read(name, { qty: 3 })
          yield* queues.releaseBatch(name, leased.slice(0, 2), { error: "bad" })
          const third = leased[2]
          if (third === undefined) return yield* Effect.die("no message")
          yield* queues.archive(name, third)
          expect((yield* queues.listArchive(name, { dead: false })).map((m) => m.id)).toEqual([ids[2]])
          expect((yield* queues.listArchive(name)).length).toBe(3)
          const page = yield* queues.deadLetters(name, { limit: 1 })
          expect(page.map((m) => m.id)).toEqual([ids[1]])
          expect((yield* queues.deadLetters(name, { before: ids[1] })).map((m) => m.id)).toEqual([ids[0]])
          const ids0 = ids[0]
          if (ids0 === undefined) return yield* Effect.die("no id")
          expect(yield* queues.requeueDead(name, { ids: [ids0, 999_999_999] })).toEqual([ids0])
          expect((yield* queues.deadLetters(name)).map((m) => m.id)).toEqual([ids[1]])
          expect((yield* queues.read(name)).map((m) => m.id)).toEqual([ids0])
        })
    )

    it.effect(
      "metrics count depth, in flight, delayed, oldest age, archived and dead, and set the gauges",
      () =>
        withTestClock(
          Effect.gen(function* () {
            const queues = yield* Queue.Queues
            const name = uniqueName("metrics")
            yield* queues.createQueue(name, { maxDeliveries: 1 })
            yield* queues.sendBatch(name, [{ payload: 1 }, { payload: 2 }])
            yield* TestClock.adjust(Duration.seconds(5))
            yield* queues.sendBatch(name, [{ payload: 3 }, { payload: 4 }, { payload: 5, delay: "1 hour" }])
            const [a, b] = yield* queues.read(name, { qty: 2 })
            if (a === undefined || b === undefined) return yield* Effect.die("no messages")
            yield* queues.archive(name, a)
            yield* queues.release(name, b, { error: "dead" })
            yield* queues.read(name)
            const metrics = yield* queues.metrics(name)
            expect(metrics).toMatchObject({ depth: 1, inFlight: 1, delayed: 1, archived: 1, dead: 1 })
            expect(metrics.oldestMessageAgeMs).toBe(0)
            const all = yield* queues.metricsAll
            expect(all.find((m) => m.queue === name)?.depth).toBe(1)
            const gauge = yield* Metric.value(Metric.tagged(Metrics.depth, "queue", name))
            expect(gauge.value).toBe(1)
            const dead = yield* Metric.value(Metric.tagged(Metrics.dead, "queue", name))
            expect(dead.value).toBe(1)
          })
        )
    )

    it.effect(
      "an idempotency key is remembered through retention, then forgotten once its message is gone",
      () =>
        withTestClock(
          Effect.gen(function* () {
            const queues = yield* Queue.Queues
            const name = uniqueName("key-retention")
            yield* queues.createQueue(name, { retention: "1 hour" })
            const first = yield* queues.send(name, "v1", { dedupKey: "invoice-7" })
            const kept = yield* queues.send(name, "v1", { dedupKey: "still-queued" })
            yield* queues.delete(name, yield* one(yield* queues.read(name)))
            yield* TestClock.adjust(Duration.minutes(61))
            const report = yield* queues.maintain
            expect(report.purgedKeys).toBeGreaterThanOrEqual(1)
            // The key of a message still in the queue is kept however old it is.
            expect(yield* queues.send(name, "again", { dedupKey: "still-queued" })).toBe(kept)
            const second = yield* queues.send(name, "v2", { dedupKey: "invoice-7" })
            expect(second).not.toBe(first)
          })
        )
    )

    it.effect(
      "deleted messages are gone; archived ones are kept until retention, dead letters until requeued",
      () =>
        withTestClock(
          Effect.gen(function* () {
            const queues = yield* Queue.Queues
            const name = uniqueName("retention")
            yield* queues.createQueue(name, { retention: "1 hour", maxDeliveries: 1 })
            yield* queues.sendBatch(name, [{ payload: 1 }, { payload: 2 }, { payload: 3 }])
            const [a, b, c] = yield* queues.read(name, { qty: 3 })
            if (a === undefined || b === undefined || c === undefined) return yield* Effect.die("no messages")
            yield* queues.delete(name, a)
            yield* queues.archive(name, b)
            yield* queues.release(name, c, { error: "dead" })
            expect(yield* archiveRows(name)).toBe(2)
            yield* TestClock.adjust(Duration.minutes(59))
            expect((yield* queues.maintain).purgedArchived).toBe(0)
            yield* TestClock.adjust(Duration.minutes(2))
            const report = yield* queues.maintain
            expect(report.purgedArchived).toBeGreaterThanOrEqual(1)
            expect((yield* queues.listArchive(name)).map((m) => [m.id, m.dead])).toEqual([[c.id, true]])
          })
        )
    )
  })
})
