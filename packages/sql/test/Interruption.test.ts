/**
 * Interrupting a fiber anywhere inside a Keel transaction — while it waits for the session, while
 * BEGIN runs, between the statements of a plan, during COMMIT — never leaves the database unusable,
 * and the interrupted transaction keeps all of its writes or none. Each case sweeps the moment of
 * the interruption (microtask yields, then event-loop turns) instead of hoping to hit one.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { expect, layer } from "@effect/vitest"
import { Backend, GroupCommit, Plan, Retry, Transaction } from "@keel/sql"
import { Duration, Effect, Exit, Fiber, Layer, Scope } from "effect"
import * as TestDatabase from "./support/TestDatabase.js"

const tables = Layer.effectDiscard(
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql`CREATE TABLE interrupted (id INTEGER PRIMARY KEY, tag TEXT NOT NULL)`
  )
)

/** Statements per plan: an interrupted plan must have kept exactly 0 or this many rows. */
const statements = 4

/** A plan of several inserts, one statement at a time (the Effect path on every backend but SQLite). */
const inserts = (sql: SqlClient.SqlClient, tag: string, first: number): Plan.Make<number> =>
  function* () {
    for (let i = 0; i < statements; i++) {
      yield* Plan.run(sql`INSERT INTO interrupted (id, tag) VALUES (${first + i}, ${tag})`)
    }
    const rows = yield* Plan.rows(
      sql<{ n: number }>`SELECT COUNT(*) AS n FROM interrupted WHERE tag = ${tag}`
    )
    return Number(rows[0]?.n)
  }

/** The moments of an interruption: after 0–39 yields of the scheduler, then after 1–15 event-loop turns. */
const moments: ReadonlyArray<{ readonly yields: number; readonly turns: number }> = [
  ...Array.from({ length: 40 }, (_, yields) => ({ yields, turns: 0 })),
  ...Array.from({ length: 15 }, (_, turn) => ({ yields: 0, turns: turn + 1 }))
]

const wait = (moment: { readonly yields: number; readonly turns: number }) =>
  Effect.gen(function* () {
    for (let i = 0; i < moment.yields; i++) yield* Effect.yieldNow()
    for (let i = 0; i < moment.turns; i++) {
      yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
    }
  })

/** Fails (instead of hanging the suite) unless a plain statement and a new transaction complete in time. */
const stillUsable = (sql: SqlClient.SqlClient, id: number, after: string) =>
  Effect.zipRight(
    sql`SELECT 1`,
    Transaction.immediate(sql`INSERT INTO interrupted (id, tag) VALUES (${id}, 'after')`)
  ).pipe(
    Effect.timeoutFail({
      duration: Duration.seconds(5),
      onTimeout: () => new Error(`the database hung after an interruption ${after}`)
    })
  )

const rowsTagged = (sql: SqlClient.SqlClient, tag: string) =>
  Effect.map(sql<{ n: number }>`SELECT COUNT(*) AS n FROM interrupted WHERE tag = ${tag}`, (rows) =>
    Number(rows[0]?.n ?? 0)
  )

/**
 * A fresh database per case, so that a wedged session fails only its own case. On PostgreSQL a pool
 * of two: a connection left inside an open transaction shows up as a hang after two of them.
 */
const database = (kind: TestDatabase.Kind) =>
  Layer.provideMerge(tables, TestDatabase.layer(kind, { maxConnections: 2 }))

TestDatabase.describeEach("Interruption", (kind) => {
  layer(database(kind), { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect(
      "a plan interrupted at any moment keeps all its writes or none, and the session stays usable",
      () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          for (const [index, moment] of moments.entries()) {
            const tag = `alone-${index}`
            const victim = yield* Effect.fork(Transaction.plan(inserts(sql, tag, 10_000 + index * 10)))
            yield* wait(moment)
            yield* Fiber.interrupt(victim)
            yield* stillUsable(sql, 90_000 + index, `after ${moment.yields} yields, ${moment.turns} turns`)
            expect([0, statements]).toContain(yield* rowsTagged(sql, tag))
          }
        })
    )
  })

  layer(database(kind), { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect(
      "a retried plan interrupted beside group commits and plain statements leaves every one of them able to finish",
      () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const backend = yield* Backend.Backend
          // Closed by hand at the end, not by the test's scope: with a wedged session, closing it
          // (which waits for the groups in flight) would hang instead of failing.
          const scope = yield* Scope.make()
          const committer = yield* Scope.extend(GroupCommit.make(backend), scope)
          for (const [index, moment] of moments.entries()) {
            const tag = `crowd-${index}`
            const base = 200_000 + index * 100
            const victim = yield* Effect.fork(Retry.run(Retry.plan(inserts(sql, tag, base), backend)))
            const others = yield* Effect.fork(
              Effect.all(
                [
                  Effect.forEach(
                    [1, 2, 3],
                    (member) => committer.submit(inserts(sql, `${tag}-group-${member}`, base + member * 10)),
                    { concurrency: "unbounded" }
                  ),
                  sql`SELECT 1`
                ],
                { concurrency: "unbounded" }
              )
            )
            yield* wait(moment)
            yield* Fiber.interrupt(victim)
            const after = `after ${moment.yields} yields, ${moment.turns} turns`
            yield* Fiber.join(others).pipe(
              Effect.timeoutFail({
                duration: Duration.seconds(5),
                onTimeout: () => new Error(`group commits hung after an interruption ${after}`)
              })
            )
            yield* stillUsable(sql, 190_000 + index, after)
            expect([0, statements]).toContain(yield* rowsTagged(sql, tag))
            for (const member of [1, 2, 3]) {
              expect(yield* rowsTagged(sql, `${tag}-group-${member}`)).toBe(statements)
            }
          }
          yield* Scope.close(scope, Exit.void)
        })
    )
  })
})
