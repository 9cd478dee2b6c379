/**
 * The synchronous core's lone send (`QueueStore.Store.sendNow`): on better-sqlite3 a single unkeyed
 * send that is not being grouped is checked, stored and answered in the caller's synchronous step
 * — with the wake-up, the metrics and the typed outcomes of the ordinary path. Elsewhere (and while
 * sends are grouped, or the session is held) the store declines and nothing runs.
 */
import { expect, layer } from "@effect/vitest"
import { Queue, type QueueStore, SqlQueueStore } from "@keel/queue"
import { Backend, Done, Transaction } from "@keel/sql"
import { Faults, TestDatabase } from "@keel/testkit"
import { Effect, Exit, Fiber, Layer, Metric, Option, Stream } from "effect"
import { messageRows, uniqueName } from "./support/QueueTest.js"

const message = (payload: string): QueueStore.NewMessage => ({
  payload,
  priority: 0,
  delayMs: 0,
  dedupKey: undefined,
  dedupWindowMs: undefined,
  dedupMode: "ignore",
  maxDeliveries: undefined,
  backoff: undefined,
  group: undefined
})

/** The `keel_queue_sent_total` count of `queue` whose labels include `extra`. */
const sentCount = (queue: string, extra: Readonly<Record<string, string>> = {}) =>
  Effect.map(Metric.snapshot, (pairs) =>
    pairs
      .filter((pair) => pair.metricKey.name === "keel_queue_sent_total")
      .filter((pair) => {
        const labels = new Map(pair.metricKey.tags.map((tag) => [tag.key, tag.value]))
        return (
          labels.get("queue") === queue &&
          Object.entries(extra).every(([key, value]) => labels.get(key) === value)
        )
      })
      .reduce((sum, pair) => sum + ("count" in pair.metricState ? Number(pair.metricState.count) : 0), 0)
  )

TestDatabase.describeEach("Queue lone send in the caller's step", (kind) => {
  const database = Layer.provideMerge(Faults.layer, TestDatabase.layer(kind))
  layer(Queue.layer().pipe(Layer.provideMerge(database)), { timeout: 120_000, excludeTestServices: true })(
    (it) => {
      /** A second store over the same database, and 8 lone sends so that it runs sends at once. */
      const prepare = (prefix: string) =>
        Effect.gen(function* () {
          const queues = yield* Queue.Queues
          const store = yield* SqlQueueStore.make()
          const name = uniqueName(prefix)
          yield* queues.createQueue(name)
          for (let n = 0; n < 8; n++) yield* store.send(name, [message(`"warm ${n}"`)], Date.now())
          return { queues, store, name }
        })

      it.scoped("only better-sqlite3 answers in the caller's step; a keyed send never does", () =>
        Effect.gen(function* () {
          const { store, name } = yield* prepare("where")
          if (kind !== "sqlite") {
            expect(store.sendNow).toBeUndefined()
            return
          }
          const sendNow = store.sendNow
          if (sendNow === undefined) return expect.fail("better-sqlite3 has a synchronous driver")
          expect(sendNow(name, { ...message('"keyed"'), dedupKey: "k" }, Date.now())).toBeUndefined()
          expect(yield* messageRows(name)).toBe(8)
        })
      )

      it.scoped(
        "a lone send is stored before its effect runs, wakes a listening consumer, and says which queue",
        () =>
          Effect.gen(function* () {
            const { store, name } = yield* prepare("stored")
            const sendNow = store.sendNow
            if (sendNow === undefined) return
            const wakeups = yield* store.wakeups(name)
            if (wakeups === undefined) return expect.fail("the queue exists")
            const woken = yield* Effect.fork(Effect.timeout(Stream.runHead(wakeups), "5 seconds"))
            // Subscribed once the listener has had a moment (a wake-up before that reaches nobody).
            yield* Effect.sleep("50 millis")
            const answer = sendNow(name, message('"now"'), Date.now())
            if (answer === undefined || !Done.isDone(answer))
              return expect.fail("answered in the caller's step")
            // Stored already: the row is there before the answer is looked at.
            expect(yield* messageRows(name)).toBe(9)
            expect(Exit.isSuccess(answer) && answer.value?.ids).toHaveLength(1)
            expect(yield* Fiber.join(woken)).toEqual(Option.some("send"))
            // A queue that does not exist: stored nothing, answered at once as "no such queue".
            const missing = sendNow(uniqueName("missing"), message('"lost"'), Date.now())
            expect(missing !== undefined && Done.isDone(missing) && Exit.isSuccess(missing)).toBe(true)
            expect(
              missing !== undefined && Done.isDone(missing) && Exit.isSuccess(missing) && missing.value
            ).toBe(undefined)
          })
      )

      it.scoped(
        "inside the caller's transaction the store declines: the send joins it and rolls back with it",
        () =>
          Effect.gen(function* () {
            const { queues, store, name } = yield* prepare("joined")
            const sendNow = store.sendNow
            if (sendNow === undefined) return
            const declined = yield* Transaction.immediate(
              Effect.sync(() => sendNow(name, message('"x"'), Date.now()))
            )
            expect(declined).toBeUndefined()
            const failed = yield* Effect.exit(
              Transaction.immediate(
                Effect.zipRight(queues.send(name, "rolled back"), Effect.fail("abort" as const))
              )
            )
            expect(Exit.isFailure(failed)).toBe(true)
            expect(yield* messageRows(name)).toBe(8)
          })
      )

      it.scoped("a send counts itself with the labels its fiber adds to metrics, on either path", () =>
        Effect.gen(function* () {
          const { queues, name } = yield* prepare("labels")
          for (let n = 0; n < 12; n++) {
            yield* Effect.tagMetrics(queues.send(name, { n }), { tenant: "acme" })
          }
          expect(yield* sentCount(name, { tenant: "acme" })).toBe(12)
          yield* queues.send(name, "untagged")
          expect(yield* sentCount(name)).toBe(13)
        })
      )

      it.scoped(
        "a missing queue is QueueNotFound; a COMMIT whose outcome is unknown is SendOutcomeUnknown, not re-run",
        () =>
          Effect.gen(function* () {
            const { queues, name } = yield* prepare("outcomes")
            const faults = yield* Faults.Faults
            const backend = yield* Backend.Backend
            // Lone sends so that the queue service's own store runs them at once too.
            for (let n = 0; n < 10; n++) yield* queues.send(name, { n })
            const missing = yield* Effect.flip(queues.send(uniqueName("missing"), 1))
            expect(missing._tag).toBe("QueueNotFound")
            const before = yield* messageRows(name)
            yield* faults.clear
            // The write took effect and then failed: its COMMIT on SQLite's dialect, the autocommit
            // statement itself on PostgreSQL's.
            yield* faults.inject(
              backend.dialect === "pg"
                ? { match: /INSERT INTO keel_queue_messages/, timing: "after", error: "busy" }
                : { match: /^COMMIT/, timing: "after", error: "busy" }
            )
            const unknown = yield* Effect.flip(queues.send(name, "maybe"))
            expect(unknown._tag).toBe("SendOutcomeUnknown")
            expect(yield* faults.fired).toBe(1)
            // Stored once, never twice.
            expect(yield* messageRows(name)).toBe(before + 1)
          })
      )
    }
  )
})
