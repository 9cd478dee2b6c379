/**
 * DESIGN.md rule 1, pinned down with injected faults: a statement or COMMIT that reports a lock
 * error *after* it took effect. Inside a transaction, a post-write error on a statement rolls the
 * whole transaction back, so re-running it is safe for every send; a COMMIT that fails after it took
 * effect leaves the outcome unknown, and only a keyed send may then be retried. On the PostgreSQL
 * dialect a single unkeyed send (and a single acknowledgement) outside the caller's transaction is
 * one autocommit statement: a failure reported after it ran leaves the outcome unknown, so it is
 * never re-run. The statement counts of those paths are pinned here too.
 */

import * as SqlClient from "@effect/sql/SqlClient"
import { expect, layer } from "@effect/vitest"
import { Queue } from "@keel/queue"
import { Backend, Retry, Transaction } from "@keel/sql"
import { Faults, TestDatabase } from "@keel/testkit"
import { Effect, Layer } from "effect"
import { archiveRows, messageRows, uniqueName } from "./support/QueueTest.js"

/** The realistic "COMMIT took effect, then failed" fault of each dialect. */
const commitUnknown = (dialect: "sqlite" | "pg"): Faults.Fault =>
  dialect === "sqlite"
    ? { match: /^COMMIT/, timing: "after", error: "busy" }
    : { match: /^COMMIT/, timing: "after", error: "connection", breakConnection: true }

const insertMessage = /INSERT INTO keel_queue_messages/

const statements = Effect.flatMap(Faults.Faults, (faults) => faults.statements)

const begins = Effect.map(
  Effect.flatMap(Faults.Faults, (faults) => faults.statements),
  (statements) => statements.filter((statement) => statement.startsWith("BEGIN")).length
)

/** A fast retry policy: what is under test is which failures are retried, not the waiting. */
const quick = Retry.layerPolicy(Faults.quickRetry)

TestDatabase.describeEach("Queue faults", (kind) => {
  const database = Layer.provideMerge(Faults.layer, TestDatabase.layer(kind))
  const queue = Queue.layer().pipe(Layer.provideMerge(database), Layer.provideMerge(quick))
  layer(queue, { timeout: 120_000, excludeTestServices: true })((it) => {
    const prepare = (prefix: string) =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
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
      "seed (b), statement: an unkeyed send whose INSERT reports a lock error after writing is never re-run: one row",
      () =>
        Effect.gen(function* () {
          const { queues, faults, name, dialect } = yield* prepare("unkeyed-insert")
          yield* faults.inject({ match: insertMessage, timing: "after", error: "locked" })
          if (dialect === "pg") {
            // One autocommit statement: the error may come after it took effect, so it is not re-run.
            const error = yield* Effect.flip(queues.send(name, { order: 2 }))
            expect(error).toMatchObject({ _tag: "SendOutcomeUnknown", queue: name, messages: 1 })
            expect(yield* faults.fired).toBe(1)
            expect((yield* statements).filter((s) => insertMessage.test(s))).toHaveLength(1)
            expect(yield* begins).toBe(0)
            expect(yield* messageRows(name)).toBe(1)
            return
          }
          // Inside BEGIN IMMEDIATE the error rolls the whole transaction back: re-running it is safe.
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
          // On the PostgreSQL dialect the send has no COMMIT: its one statement is what commits.
          yield* faults.inject(
            dialect === "pg"
              ? { match: insertMessage, timing: "after", error: "connection", breakConnection: true }
              : commitUnknown(dialect)
          )
          const error = yield* Effect.flip(queues.send(name, { order: 4 }))
          expect(error).toMatchObject({ _tag: "SendOutcomeUnknown", queue: name, messages: 1 })
          expect(yield* faults.fired).toBe(1)
          expect(yield* begins).toBe(dialect === "pg" ? 0 : 1)
          expect((yield* statements).filter((s) => insertMessage.test(s))).toHaveLength(1)
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
        const { queues, faults, name, dialect } = yield* prepare("busy-begin")
        yield* faults.inject({ match: /^BEGIN/, timing: "before", error: "busy", times: 3 })
        // A single unkeyed message on the PostgreSQL dialect is one autocommit statement (no BEGIN);
        // a batch of several still is a transaction.
        if (dialect === "pg") yield* queues.sendBatch(name, [{ payload: "patient" }, { payload: "too" }])
        else yield* queues.send(name, "patient")
        expect(yield* faults.fired).toBe(3)
        expect(yield* messageRows(name)).toBe(dialect === "pg" ? 2 : 1)
      })
    )

    it.effect(
      "a connection lost during an unkeyed send's INSERT in a transaction is a QueueStoreError and leaves no row",
      () =>
        Effect.gen(function* () {
          const { queues, faults, name, dialect } = yield* prepare("lost-insert")
          yield* faults.inject({ match: insertMessage, timing: "after", error: "connection" })
          // A single unkeyed message on the PostgreSQL dialect is autocommit (covered above); a batch
          // of several is a transaction.
          const error = yield* Effect.flip(
            dialect === "pg"
              ? Effect.asVoid(
                  queues.sendBatch(name, [{ payload: "never committed" }, { payload: "nor this" }])
                )
              : Effect.asVoid(queues.send(name, "never committed"))
          )
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
          const { queues, faults, name, dialect } = yield* prepare("archive-retry")
          yield* queues.sendBatch(name, [{ payload: "ack me" }, { payload: "and me" }])
          const leased = yield* queues.read(name, { qty: 2 })
          expect(leased).toHaveLength(2)
          yield* faults.inject({
            match: /^DELETE FROM keel_queue_messages/,
            timing: "after",
            error: "locked"
          })
          // On the PostgreSQL dialect one lease is one autocommit statement (covered below): the
          // transaction under test is the batch's there.
          if (dialect === "pg") yield* queues.archiveBatch(name, leased)
          else for (const message of leased) yield* queues.archive(name, message)
          expect(yield* faults.fired).toBe(1)
          expect(yield* messageRows(name)).toBe(0)
          expect(yield* archiveRows(name)).toBe(2)
        })
    )

    // On the PostgreSQL dialect a read is one autocommit statement, not a transaction: see the next test.
    it.effect.skipIf(kind === "postgres" || kind === "pglite")(
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

    it.effect(
      "a read is one statement on the PostgreSQL dialect (idle or not); an error after it ran is not re-run and the lease expires",
      () =>
        Effect.gen(function* () {
          const { queues, faults, name, dialect } = yield* prepare("one-statement-read")
          const leaseStatement = /^WITH q AS/
          expect(yield* queues.read(name)).toEqual([])
          const idle = yield* statements
          yield* queues.send(name, "lease me")
          yield* faults.clear
          const [first] = yield* queues.read(name, { visibilityTimeout: "1 minute" })
          const busy = yield* statements
          expect(first?.deliveries).toBe(1)
          if (dialect === "pg") {
            expect(idle).toHaveLength(1)
            expect(idle[0]).toMatch(leaseStatement)
            expect(busy).toHaveLength(1)
            expect(busy[0]).toMatch(leaseStatement)
          } else {
            // SQLite and libSQL: an idle read takes no write lock (one check, no BEGIN).
            expect(idle).toHaveLength(1)
            expect(busy[1]).toMatch(/^BEGIN IMMEDIATE/)
          }
          if (first === undefined || dialect !== "pg") return
          yield* queues.release(name, first)
          yield* faults.clear
          yield* faults.inject({ match: leaseStatement, timing: "after", error: "locked" })
          const error = yield* Effect.flip(queues.read(name, { visibilityTimeout: "100 millis" }))
          expect(error).toMatchObject({ _tag: "QueueStoreError", cause: { _tag: "Locked" } })
          expect((yield* statements).filter((s) => leaseStatement.test(s))).toHaveLength(1)
          // The failed read did lease it: invisible until that lease expires, then delivered again.
          expect(yield* queues.read(name)).toEqual([])
          yield* Effect.sleep("150 millis")
          const [again] = yield* queues.read(name)
          expect(again?.id).toBe(first.id)
          expect(again?.deliveries).toBe(3)
          // An unknown queue is still typed.
          expect(yield* Effect.flip(queues.read(`${name}-missing`))).toMatchObject({ _tag: "QueueNotFound" })
        })
    )
    it.effect(
      "an unkeyed send outside a transaction is one statement on the PostgreSQL dialect, BEGIN IMMEDIATE … COMMIT elsewhere",
      () =>
        Effect.gen(function* () {
          const { queues, faults, name, dialect } = yield* prepare("one-statement-send")
          yield* queues.send(name, { order: 5 })
          const sent = yield* statements
          if (dialect === "pg") {
            expect(sent).toHaveLength(1)
            expect(sent[0]).toMatch(insertMessage)
          } else {
            expect(sent).toHaveLength(3)
            expect(sent[0]).toMatch(/^BEGIN IMMEDIATE/)
            expect(sent[1]).toMatch(insertMessage)
            expect(sent[2]).toMatch(/^COMMIT/)
          }
          expect(yield* messageRows(name)).toBe(1)
          // Still exactly one statement per send: unknown queues are typed, nothing written.
          yield* faults.clear
          const missing = yield* Effect.flip(queues.send(`${name}-missing`, 1))
          expect(missing._tag).toBe("QueueNotFound")
          if (dialect === "pg") expect(yield* statements).toHaveLength(1)
        })
    )

    it.effect(
      "a send inside the caller's transaction runs on its connection, joins it, and rolls back with it",
      () =>
        Effect.gen(function* () {
          const { queues, name } = yield* prepare("joins-transaction")
          const sql = yield* SqlClient.SqlClient
          const failed = yield* Transaction.immediate(
            Effect.gen(function* () {
              yield* queues.send(name, { order: 6 })
              return yield* Effect.fail("declined" as const)
            })
          ).pipe(Effect.flip)
          expect(failed).toBe("declined")
          const seen = yield* statements
          const begin = seen.findIndex((s) => s.startsWith("BEGIN"))
          const insert = seen.findIndex((s) => insertMessage.test(s))
          const rollback = seen.indexOf("ROLLBACK")
          expect(begin).toBeGreaterThanOrEqual(0)
          expect(insert).toBeGreaterThan(begin)
          expect(rollback).toBeGreaterThan(insert)
          expect(yield* messageRows(name)).toBe(0)
          // And commits with it.
          yield* Transaction.immediate(queues.send(name, { order: 7 }))
          expect(yield* messageRows(name)).toBe(1)
          // A plain @effect/sql transaction (Keel's, installed on the client) is joined as well.
          const plain = yield* sql
            .withTransaction(
              Effect.zipRight(queues.send(name, { order: 8 }), Effect.fail("declined" as const))
            )
            .pipe(Effect.flip)
          expect(plain).toBe("declined")
          expect(yield* messageRows(name)).toBe(1)
        })
    )

    it.effect(
      "a single archive or delete outside a transaction is one statement on the PostgreSQL dialect",
      () =>
        Effect.gen(function* () {
          const { queues, faults, name, dialect } = yield* prepare("one-statement-ack")
          yield* queues.sendBatch(name, [{ payload: 1 }, { payload: 2 }])
          const [first, second] = yield* queues.read(name, { qty: 2 })
          if (first === undefined || second === undefined) return yield* Effect.die("no messages")
          yield* faults.clear
          yield* queues.archive(name, first)
          const archived = yield* statements
          yield* faults.clear
          yield* queues.delete(name, second)
          const deleted = yield* statements
          if (dialect === "pg") {
            expect(archived).toHaveLength(1)
            expect(archived[0]).toMatch(/^WITH moved AS \(\s*DELETE FROM keel_queue_messages/)
            expect(deleted).toHaveLength(1)
            expect(deleted[0]).toMatch(/^DELETE FROM keel_queue_messages/)
          } else {
            expect(archived[0]).toMatch(/^BEGIN IMMEDIATE/)
            expect(deleted[0]).toMatch(/^BEGIN IMMEDIATE/)
          }
          expect(yield* messageRows(name)).toBe(0)
          expect(yield* archiveRows(name)).toBe(1)
          const [row] = yield* queues.listArchive(name)
          expect(row).toMatchObject({ id: first.id, dead: false, deliveries: 1, payload: 1 })
          // Acknowledging again: the lease is gone, LeaseLost, nothing changed.
          expect(yield* Effect.flip(queues.archive(name, first))).toMatchObject({
            _tag: "LeaseLost",
            messageIds: [first.id]
          })
          expect(yield* Effect.flip(queues.delete(name, second))).toMatchObject({ _tag: "LeaseLost" })
          expect(yield* archiveRows(name)).toBe(1)
        })
    )

    it.effect(
      "a single archive whose statement reports a lock error after it ran is not re-run: archived once, typed error",
      () =>
        Effect.gen(function* () {
          const { queues, faults, name, dialect } = yield* prepare("archive-after")
          yield* queues.send(name, "ack me")
          const [leased] = yield* queues.read(name)
          if (leased === undefined) return yield* Effect.die("no message")
          const archiveStatement = dialect === "pg" ? /^WITH moved AS/ : /^DELETE FROM keel_queue_messages/
          yield* faults.inject({ match: archiveStatement, timing: "after", error: "locked" })
          const outcome = yield* Effect.either(queues.archive(name, leased))
          expect(yield* faults.fired).toBe(1)
          if (dialect === "pg") {
            // Autocommit: the archive took effect; re-running would report it as LeaseLost.
            expect(outcome._tag).toBe("Left")
            expect(outcome).toHaveProperty("left._tag", "QueueStoreError")
            expect(outcome).toHaveProperty("left.cause._tag", "Locked")
            expect((yield* statements).filter((s) => archiveStatement.test(s))).toHaveLength(1)
          } else {
            expect(outcome._tag).toBe("Right")
          }
          expect(yield* messageRows(name)).toBe(0)
          expect(yield* archiveRows(name)).toBe(1)
        })
    )
  })
})
