/**
 * `Plan.each` / `Plan.eachCount` (one statement template run per item), `Plan.bound` (one run), `Plan.synchronous`,
 * `Transaction.planNow` (a plan run in the caller's synchronous step when the session is free) and
 * `Retry.planNow` (its first attempt so, the re-runs a transient failure allows after it).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { expect, layer } from "@effect/vitest"
import { Backend, Done, Plan, Retry, Transaction } from "@keel/sql"
import { Cause, Effect, Exit, Layer, Option } from "effect"
import * as Faults from "./support/Faults.js"
import * as TestDatabase from "./support/TestDatabase.js"

const rowsOf = (table: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{
      id: number
      tag: string
      n: number
    }>`SELECT id, tag, n FROM ${sql(table)} ORDER BY id`
    return rows.map((row) => ({ id: Number(row.id), tag: row.tag, n: Number(row.n) }))
  })

TestDatabase.describeEach("Plan.each", (kind) => {
  const withFaults = Layer.provideMerge(Faults.layer, TestDatabase.layer(kind))
  layer(withFaults, { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("set up", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        for (const table of [
          "each_rows",
          "each_counts",
          "each_failed",
          "each_now",
          "each_hoisted",
          "each_retry"
        ])
          yield* sql`CREATE TABLE ${sql(table)} (id INTEGER PRIMARY KEY, tag TEXT NOT NULL, n INTEGER NOT NULL)`
      })
    )

    it.effect(
      "runs the template once per item with that item's values, and returns each run's rows in order",
      () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const faults = yield* Faults.Faults
          const items = Array.from({ length: 50 }, (_, i) => [i + 1, `tag-${i + 1}`, i * 10] as const)
          yield* faults.clear
          const runs = yield* Transaction.plan(() =>
            Plan.each(
              (id: number, tag: string, n: number) =>
                sql<{
                  id: number
                }>`INSERT INTO each_rows (id, tag, n) VALUES (${id}, ${tag}, ${n}) RETURNING id`,
              items
            )
          )
          expect(runs.map((rows) => rows.map((row) => Number(row.id)))).toEqual(items.map(([id]) => [id]))
          expect(yield* rowsOf("each_rows")).toEqual(items.map(([id, tag, n]) => ({ id, tag, n })))
          const inserts = (yield* faults.statements).filter((text) => text.startsWith("INSERT INTO"))
          // One statement per item, and on every backend the same text each time (prepared once on SQLite).
          expect(inserts).toHaveLength(items.length)
          expect(new Set(inserts).size).toBe(1)
        })
    )

    it.effect("Plan.bound runs the template once with its values and returns that run's rows", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const select = (tag: string) =>
          sql<{ id: number }>`SELECT id FROM each_rows WHERE tag = ${tag} ORDER BY id`
        const found = yield* Transaction.plan(() => Plan.bound(select, ["tag-7"]))
        expect(found.map((row) => Number(row.id))).toEqual([7])
        expect(yield* Transaction.plan(() => Plan.bound(select, ["no-such-tag"]))).toEqual([])
      })
    )

    it.effect("a run that fails rolls back the runs before it: nothing of the plan persists", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`INSERT INTO each_failed (id, tag, n) VALUES (3, 'there', 0)`
        const items = [1, 2, 3, 4].map((id) => [id, `t${id}`] as const)
        const failure: Transaction.TransactionError = yield* Transaction.plan(
          (): Plan.Plan<unknown> =>
            Plan.each(
              (id: number, tag: string) =>
                sql`INSERT INTO each_failed (id, tag, n) VALUES (${id}, ${tag}, 0)`,
              items
            )
        ).pipe(Effect.flip)
        expect(failure._tag).toBe("UniqueViolation")
        expect(yield* rowsOf("each_failed")).toEqual([{ id: 3, tag: "there", n: 0 }])
      })
    )

    it.effect(
      "Plan.synchronous is true on the synchronous driver only, and false inside a caller's transaction",
      () =>
        Effect.gen(function* () {
          const backend = yield* Backend.Backend
          const alone = yield* Transaction.plan(() => Plan.synchronous())
          expect(alone).toBe(backend.kind === "sqlite")
          const inside = yield* Transaction.immediate(Transaction.plan(() => Plan.synchronous()))
          expect(inside).toBe(false)
        })
    )

    it.effect("Plan.eachCount reports how many rows each run changed, on the synchronous driver", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`INSERT INTO each_counts (id, tag, n) VALUES (1, 'one', 5), (2, 'two', 5)`
        const upsert = (id: number, n: number) =>
          sql`INSERT INTO each_counts (id, tag, n) VALUES (${id}, 'new', ${n})
            ON CONFLICT (id) DO UPDATE SET n = excluded.n WHERE excluded.n > each_counts.n`
        const items = [
          [1, 9],
          [2, 1],
          [3, 1]
        ] as const
        const counted = yield* Transaction.plan(function* () {
          if (!(yield* Plan.synchronous())) return undefined
          return yield* Plan.eachCount(upsert, items)
        })
        if (kind === "sqlite") {
          // Later n: written; earlier n: the conflict's WHERE kept the row; a new id: inserted.
          expect(counted).toEqual([1, 0, 1])
          expect((yield* rowsOf("each_counts")).map((row) => row.n)).toEqual([9, 5, 1])
        } else expect(counted).toBeUndefined()
        // Asked for where it cannot answer (the Effect path), it is a defect, not a wrong count.
        const exit = yield* Effect.exit(
          Transaction.immediate(Transaction.plan(() => Plan.eachCount(upsert, items)))
        )
        expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      })
    )

    it.effect(
      "a template function is compiled once on the synchronous driver, however many plans run it, and each plan binds its own items",
      () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const backend = yield* Backend.Backend
          let calls = 0
          // Hoisted, as a store hoists its templates: every per-run value is an argument.
          const insert = (id: number, tag: string, n: number) => {
            calls++
            return sql`INSERT INTO each_hoisted (id, tag, n) VALUES (${id}, ${tag}, ${n})`
          }
          const first = [
            [101, "a", 1],
            [102, "b", 2]
          ] as const
          const second = [
            [103, "c", 3],
            [104, "d", 4],
            [105, "e", 5]
          ] as const
          yield* Transaction.plan(() => Plan.each(insert, first))
          yield* Transaction.plan(() => Plan.each(insert, second))
          const rows = yield* rowsOf("each_hoisted")
          expect(rows).toEqual([...first, ...second].map(([id, tag, n]) => ({ id, tag, n })))
          // The synchronous driver compiles the template once (with placeholders); elsewhere each
          // item is a statement of its own.
          expect(calls).toBe(backend.kind === "sqlite" ? 1 : first.length + second.length)
        })
    )

    it.effect("a template value that is not bound as one parameter is a defect of the plan", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const exit = yield* Effect.exit(
          Transaction.plan(() =>
            // `_tag` is never bound: the template could not put each item's value in its place.
            Plan.each((id: number, _tag: string) => sql`SELECT ${id} AS id`, [[1, "a"] as const])
          )
        )
        if (kind === "sqlite") expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
        else expect(Exit.isSuccess(exit)).toBe(true)
      })
    )

    it.effect(
      "Transaction.planNow runs at once when the session is free, and not at all while it is held",
      () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const backend = yield* Backend.Backend
          const planNow = Transaction.planNow(backend)
          if (kind !== "sqlite") {
            expect(planNow).toBeUndefined()
            return
          }
          if (planNow === undefined) return expect.fail("better-sqlite3 has a synchronous driver")
          const insert =
            (id: number): Plan.Make<void> =>
            () =>
              Plan.run(sql`INSERT INTO each_now (id, tag, n) VALUES (${id}, 'now', 0)`)
          const ran = planNow(insert(1))
          expect(Option.isSome(ran)).toBe(true)
          // Already committed before its outcome is looked at.
          expect((yield* rowsOf("each_now")).map((row) => row.id)).toEqual([1])
          if (Option.isSome(ran)) yield* ran.value
          // Inside a transaction the session is held: nothing runs, and the caller is told so.
          const inside = yield* Transaction.immediate(Effect.sync(() => planNow(insert(2))))
          expect(Option.isNone(inside)).toBe(true)
          expect((yield* rowsOf("each_now")).map((row) => row.id)).toEqual([1])
          // A failed plan comes back as its typed failure (and is rolled back).
          const failed = planNow(insert(1))
          if (Option.isNone(failed)) return expect.fail("the session is free")
          expect((yield* Effect.flip(failed.value))._tag).toBe("UniqueViolation")
        })
    )

    it.effect(
      "Retry.planNow: committed or failed at once as an Exit; a busy BEGIN re-run under the policy; nothing while held",
      () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const backend = yield* Backend.Backend
          const faults = yield* Faults.Faults
          const planNow = Retry.planNow(backend)
          if (kind !== "sqlite") {
            expect(planNow).toBeUndefined()
            return
          }
          if (planNow === undefined) return expect.fail("better-sqlite3 has a synchronous driver")
          const insert = (id: number): Plan.Make<number> =>
            function* () {
              const rows = yield* Plan.rows(
                sql<{
                  id: number
                }>`INSERT INTO each_retry (id, tag, n) VALUES (${id}, 'retry', 0) RETURNING id`
              )
              return Number(rows[0]?.id)
            }
          yield* faults.clear
          // Committed in the caller's step: an Exit, the row already there.
          const committed = planNow(insert(1))
          if (committed === undefined || !Done.isDone(committed)) return expect.fail("ran at once")
          expect(Exit.isSuccess(committed) && committed.value).toBe(1)
          expect((yield* rowsOf("each_retry")).map((row) => row.id)).toEqual([1])
          // A failure no re-run can mend (a unique violation) is the Exit of the first attempt.
          const duplicate = planNow(insert(1))
          if (duplicate === undefined || !Done.isDone(duplicate)) return expect.fail("ran at once")
          expect(Exit.isFailure(duplicate) && Cause.failureOption(duplicate.cause)).toMatchObject(
            Option.some({ _tag: "UniqueViolation" })
          )
          // A busy BEGIN ran nothing: the effect handed back re-runs the plan under the policy.
          yield* faults.inject({ match: /^BEGIN/, timing: "before", error: "busy", times: 2 })
          const retried = planNow(insert(2))
          if (retried === undefined) return expect.fail("the session is free")
          expect(Done.isDone(retried)).toBe(false)
          expect(yield* Retry.withPolicy(Retry.policy(Faults.quickRetry))(retried)).toBe(2)
          expect(yield* faults.fired).toBe(2)
          expect((yield* rowsOf("each_retry")).map((row) => row.id)).toEqual([1, 2])
          // A COMMIT whose outcome is unknown is never re-run.
          yield* faults.inject({ match: /^COMMIT/, timing: "after", error: "busy" })
          const unknown = planNow(insert(3))
          if (unknown === undefined || !Done.isDone(unknown)) return expect.fail("decided at once")
          expect(Exit.isFailure(unknown) && Cause.failureOption(unknown.cause)).toMatchObject(
            Option.some({ _tag: "CommitOutcomeUnknown" })
          )
          // Inside a transaction the session is held: nothing runs.
          expect(yield* Transaction.immediate(Effect.sync(() => planNow(insert(4))))).toBeUndefined()
          expect((yield* rowsOf("each_retry")).map((row) => row.id)).toEqual([1, 2, 3])
        })
    )
  })
})
