/**
 * DESIGN.md rule 1, pinned down with injected faults: a statement or COMMIT that reports a lock
 * error *after* it took effect. Inside a transaction, a post-write error on a statement rolls the
 * whole transaction back, so re-running it is safe for every send; a COMMIT that fails after it took
 * effect leaves the outcome unknown, and only a keyed send may then be retried.
 */
import { expect, layer } from "@effect/vitest"
import { Queue } from "@keel/queue"
import { Backend, Retry } from "@keel/sql"
import { Faults, TestDatabase } from "@keel/testkit"
import { Duration, Effect, Layer } from "effect"
import { archiveRows, messageRows, uniqueName } from "./support/QueueTest.js"

/** The realistic "COMMIT took effect, then failed" fault of each dialect. */
const commitUnknown = (dialect: "sqlite" | "pg"): Faults.Fault =>
  dialect === "sqlite"
    ? { match: /^COMMIT/, timing: "after", error: "busy" }
    : { match: /^COMMIT/, timing: "after", error: "connection", breakConnection: true }

const insertMessage = /INSERT INTO keel_queue_messages/

const begins = Effect.map(
  Effect.flatMap(Faults.Faults, (faults) => faults.statements),
  (statements) => statements.filter((statement) => statement.startsWith("BEGIN")).length
)

/** A fast retry policy: what is under test is which failures are retried, not the waiting. */
const quick = Retry.layerPolicy({
  base: Duration.millis(1),
  factor: 2,
  maxDelay: Duration.millis(5),
  maxRetries: 10,
  maxElapsed: Duration.seconds(5)
})

TestDatabase.describeEach("Queue faults", (kind) => {
  const database = Layer.provideMerge(Faults.layer, TestDatabase.layer(kind))
  const queue = Queue.layer().pipe(Layer.provideMerge(database), Layer.provideMerge(quick))
  layer(queue, { timeout: 120_000, excludeTestServices: true })((it) => {
    const prepare = (prefix: string) =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queue
        const faults = yield* Faults.Faults
        const backend = yield* Backend.Backend
        const name = uniqueName(prefix)
        yield* queues.createQueue(name)
        yield* faults.clear
        return { queues, faults, name, dialect: backend.dialect }
      })

    it.effect(
      "seed (b), statement: a keyed send whose INSERT reports a lock error after writing leaves one row",
      () =>
        Effect.gen(function* () {
          const { queues, faults, name } = yield* prepare("keyed-insert")
          yield* faults.inject({ match: insertMessage, timing: "after", error: "locked" })
          const id = yield* queues.send(name, { order: 1 }, { dedupKey: "order-1" })
          expect(yield* faults.fired).toBe(1)
          expect(yield* messageRows(name)).toBe(1)
          expect(yield* queues.send(name, { order: 1 }, { dedupKey: "order-1" })).toBe(id)
          expect(yield* messageRows(name)).toBe(1)
        })
    )

    it.effect(
      "seed (b), statement: an unkeyed send whose INSERT reports a lock error after writing is rolled back and re-run: one row",
      () =>
        Effect.gen(function* () {
          const { queues, faults, name } = yield* prepare("unkeyed-insert")
          yield* faults.inject({ match: insertMessage, timing: "after", error: "locked" })
          const id = yield* queues.send(name, { order: 2 })
          expect(yield* faults.fired).toBe(1)
          expect(yield* begins).toBe(2)
          expect(yield* messageRows(name)).toBe(1)
          expect((yield* queues.read(name)).map((m) => m.id)).toEqual([id])
        })
    )

    it.effect(
      "seed (b), COMMIT: a keyed send whose COMMIT took effect but failed is retried and yields one message",
      () =>
        Effect.gen(function* () {
          const { queues, faults, name, dialect } = yield* prepare("keyed-commit")
          yield* faults.inject(commitUnknown(dialect))
          const id = yield* queues.send(name, { order: 3 }, { dedupKey: "order-3" })
          expect(yield* faults.fired).toBe(1)
          expect(yield* begins).toBe(2)
          expect(yield* messageRows(name)).toBe(1)
          expect((yield* queues.read(name)).map((m) => m.id)).toEqual([id])
        })
    )

    it.effect(
      "seed (b), COMMIT: an unkeyed send whose COMMIT took effect but failed is SendOutcomeUnknown and not retried",
      () =>
        Effect.gen(function* () {
          const { queues, faults, name, dialect } = yield* prepare("unkeyed-commit")
          yield* faults.inject(commitUnknown(dialect))
          const error = yield* Effect.flip(queues.send(name, { order: 4 }))
          expect(error).toMatchObject({ _tag: "SendOutcomeUnknown", queue: name, messages: 1 })
          expect(yield* begins).toBe(1)
          // The COMMIT did take effect: exactly the one row, never a duplicate.
          expect(yield* messageRows(name)).toBe(1)
        })
    )

    it.effect(
      "an unkeyed batch whose COMMIT outcome is unknown is SendOutcomeUnknown for the whole batch",
      () =>
        Effect.gen(function* () {
          const { queues, faults, name, dialect } = yield* prepare("batch-commit")
          yield* faults.inject(commitUnknown(dialect))
          const error = yield* Effect.flip(
            queues.sendBatch(name, [{ payload: 1 }, { payload: 2, dedupKey: "k" }])
          )
          expect(error).toMatchObject({ _tag: "SendOutcomeUnknown", messages: 2 })
          expect(yield* begins).toBe(1)
          expect(yield* messageRows(name)).toBe(2)
        })
    )

    it.effect("a fully keyed batch whose COMMIT outcome is unknown is retried: same ids, no duplicates", () =>
      Effect.gen(function* () {
        const { queues, faults, name, dialect } = yield* prepare("keyed-batch")
        yield* faults.inject(commitUnknown(dialect))
        const ids = yield* queues.sendBatch(name, [
          { payload: 1, dedupKey: "a" },
          { payload: 2, dedupKey: "b" }
        ])
        expect(yield* messageRows(name)).toBe(2)
        expect(yield* queues.sendBatch(name, [{ payload: 9, dedupKey: "b" }])).toEqual([ids[1]])
      })
    )

    it.effect("a busy BEGIN is retried (nothing ran): one row, no error", () =>
      Effect.gen(function* () {
        const { queues, faults, name } = yield* prepare("busy-begin")
        yield* faults.inject({ match: /^BEGIN/, timing: "before", error: "busy", times: 3 })
        yield* queues.send(name, "patient")
        expect(yield* faults.fired).toBe(3)
        expect(yield* messageRows(name)).toBe(1)
      })
    )

    it.effect(
      "a connection lost during an unkeyed send's INSERT is a QueueStoreError and leaves no row",
      () =>
        Effect.gen(function* () {
          const { queues, faults, name } = yield* prepare("lost-insert")
          yield* faults.inject({ match: insertMessage, timing: "after", error: "connection" })
          const error = yield* Effect.flip(queues.send(name, "never committed"))
          expect(error._tag).toBe("QueueStoreError")
          expect(error).toHaveProperty("cause._tag", "ConnectionLost")
          expect(yield* begins).toBe(1)
          expect(yield* messageRows(name)).toBe(0)
        })
    )

    it.effect(
      "a lock error after an archive wrote rolls the acknowledgement back and re-runs it: archived once",
      () =>
        Effect.gen(function* () {
          const { queues, faults, name } = yield* prepare("archive-retry")
          yield* queues.send(name, "ack me")
          const [leased] = yield* queues.read(name)
          if (leased === undefined) return yield* Effect.die("no message")
          yield* faults.inject({
            match: /^DELETE FROM keel_queue_messages/,
            timing: "after",
            error: "locked"
          })
          yield* queues.archive(name, leased)
          expect(yield* faults.fired).toBe(1)
          expect(yield* messageRows(name)).toBe(0)
          expect(yield* archiveRows(name)).toBe(1)
        })
    )

    it.effect(
      "a lock error after a read leased its messages rolls the lease back and re-runs it: one delivery",
      () =>
        Effect.gen(function* () {
          const { queues, faults, name } = yield* prepare("read-retry")
          yield* queues.send(name, "lease me")
          yield* faults.inject({
            match: /^UPDATE keel_queue_messages\s+SET lease_token/,
            timing: "after",
            error: "locked"
          })
          const [leased] = yield* queues.read(name)
          expect(yield* faults.fired).toBe(1)
          expect(leased?.deliveries).toBe(1)
          expect(yield* queues.read(name)).toEqual([])
        })
    )
  })
})
