/**
 * Group commit on every backend: plans submitted in one event-loop turn share one transaction, a
 * savepoint each; a plan that fails or aborts fails only its caller; the rest share the COMMIT's
 * typed outcome. Statements are counted through the fault injector (which sees the synchronous
 * driver on SQLite too).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { expect, layer } from "@effect/vitest"
import { Backend, Done, GroupCommit, Plan, Transaction } from "@keel/sql"
import { Cause, Effect, Exit, Layer, Option } from "effect"
import * as Faults from "./support/Faults.js"
import * as TestDatabase from "./support/TestDatabase.js"

const tables = Layer.effectDiscard(
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql`CREATE TABLE grouped (id INTEGER PRIMARY KEY, tag TEXT NOT NULL)`
  )
)

/** A plan inserting one row; its id back. */
const insert = (sql: SqlClient.SqlClient, id: number, tag: string): Plan.Make<number> =>
  function* () {
    const rows = yield* Plan.rows(
      sql<{ id: number }>`INSERT INTO grouped (id, tag) VALUES (${id}, ${tag}) RETURNING id`
    )
    return Number(rows[0]?.id)
  }

/** A plan inserting one row, then refusing: nothing it wrote may persist. */
const insertThenAbort = (sql: SqlClient.SqlClient, id: number, tag: string): Plan.Make<number, "declined"> =>
  function* () {
    yield* Plan.run(sql`INSERT INTO grouped (id, tag) VALUES (${id}, ${tag})`)
    return yield* Plan.abort("declined" as const)
  }

const tagged = (tag: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(sql<{ id: number }>`SELECT id FROM grouped WHERE tag = ${tag} ORDER BY id`, (rows) =>
      rows.map((row) => Number(row.id))
    )
  )

const count = (prefix: string, statements: ReadonlyArray<string>) =>
  statements.filter((statement) => statement.startsWith(prefix)).length

/** The failure of an exit (its tag), or "ok". */
const outcome = <A, E>(exit: Exit.Exit<A, E>): string => {
  if (Exit.isSuccess(exit)) return "ok"
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) return "defect"
  const error = failure.value
  return typeof error === "object" && error !== null && "_tag" in error ? String(error._tag) : String(error)
}

/** The realistic "COMMIT took effect, then failed" fault of each dialect. */
const commitUnknown = (dialect: "sqlite" | "pg"): Faults.Fault =>
  dialect === "sqlite"
    ? { match: /^COMMIT/, timing: "after", error: "busy" }
    : { match: /^COMMIT/, timing: "after", error: "connection", breakConnection: true }

TestDatabase.describeEach("GroupCommit", (kind) => {
  const database = Layer.provideMerge(Faults.layer, TestDatabase.layer(kind))
  layer(Layer.provideMerge(tables, database), { timeout: 120_000, excludeTestServices: true })((it) => {
    /** A committer, the faults (cleared) and a submit of many plans at once (their exits, in order). */
    const prepare = Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const backend = yield* Backend.Backend
      const faults = yield* Faults.Faults
      const committer = yield* GroupCommit.make(backend, { defer: "always" })
      yield* faults.clear
      const together = <A, E>(plans: ReadonlyArray<Plan.Make<A, E>>) =>
        Effect.forEach(plans, (plan) => Effect.exit(committer.submit(plan)), { concurrency: "unbounded" })
      return { sql, backend, faults, committer, together }
    })

    it.scoped("plans submitted together commit in one transaction: one BEGIN, one COMMIT", () =>
      Effect.gen(function* () {
        const { sql, faults, together } = yield* prepare
        const exits = yield* together([1, 2, 3, 4, 5].map((id) => insert(sql, id, "together")))
        expect(exits.map((exit) => (Exit.isSuccess(exit) ? exit.value : undefined))).toEqual([1, 2, 3, 4, 5])
        const statements = yield* faults.statements
        expect(count("BEGIN", statements)).toBe(1)
        expect(count("COMMIT", statements)).toBe(1)
        expect(yield* tagged("together")).toEqual([1, 2, 3, 4, 5])
      })
    )

    it.scoped("a plan whose statement fails fails only its caller, typed; the others commit", () =>
      Effect.gen(function* () {
        const { sql, together } = yield* prepare
        const exits = yield* together([
          insert(sql, 10, "one-fails"),
          insert(sql, 11, "one-fails"),
          insert(sql, 10, "one-fails"),
          insert(sql, 12, "one-fails")
        ])
        expect(exits.map(outcome)).toEqual(["ok", "ok", "UniqueViolation", "ok"])
        expect(yield* tagged("one-fails")).toEqual([10, 11, 12])
      })
    )

    it.scoped("a plan that aborts keeps none of its writes; the plans around it commit", () =>
      Effect.gen(function* () {
        const { sql, together } = yield* prepare
        const exits = yield* together<number, "declined">([
          insert(sql, 20, "aborts"),
          insertThenAbort(sql, 21, "aborts"),
          insert(sql, 22, "aborts")
        ])
        expect(exits.map(outcome)).toEqual(["ok", "declined", "ok"])
        expect(yield* tagged("aborts")).toEqual([20, 22])
      })
    )

    it.scoped("a plan that throws is a defect for its caller only; the plans around it commit", () =>
      Effect.gen(function* () {
        const { sql, together } = yield* prepare
        const throws: Plan.Make<number> = function* () {
          yield* Plan.run(sql`INSERT INTO grouped (id, tag) VALUES (${71}, ${"throws"})`)
          throw new Error("a bug in the plan")
        }
        const exits = yield* together([insert(sql, 70, "throws"), throws, insert(sql, 72, "throws")])
        expect(exits.map(outcome)).toEqual(["ok", "defect", "ok"])
        expect(yield* tagged("throws")).toEqual([70, 72])
      })
    )

    it.scoped("a rejected COMMIT fails every member with CommitRejected and keeps nothing", () =>
      Effect.gen(function* () {
        const { sql, faults, together } = yield* prepare
        yield* faults.inject({ match: /^COMMIT/, timing: "before", error: "busy" })
        const exits = yield* together([30, 31, 32].map((id) => insert(sql, id, "rejected")))
        expect(exits.map(outcome)).toEqual(["CommitRejected", "CommitRejected", "CommitRejected"])
        expect(yield* tagged("rejected")).toEqual([])
      })
    )

    it.scoped("a COMMIT whose outcome is unknown is CommitOutcomeUnknown for every member", () =>
      Effect.gen(function* () {
        const { sql, backend, faults, together } = yield* prepare
        yield* faults.inject(commitUnknown(backend.dialect))
        const exits = yield* together([40, 41].map((id) => insert(sql, id, "unknown")))
        expect(exits.map(outcome)).toEqual(["CommitOutcomeUnknown", "CommitOutcomeUnknown"])
        // It did commit: the outcome was unknown to the callers, not lost.
        expect(yield* tagged("unknown")).toEqual([40, 41])
      })
    )

    it.scoped("a busy BEGIN fails every member with a rolled-back, retryable error and runs none", () =>
      Effect.gen(function* () {
        const { sql, faults, together } = yield* prepare
        yield* faults.inject({ match: /^BEGIN/, timing: "before", error: "busy" })
        const exits = yield* together([50, 51].map((id) => insert(sql, id, "busy")))
        const expected = kind === "postgres" || kind === "pglite" ? "SerializationFailure" : "Busy"
        expect(exits.map(outcome)).toEqual([expected, expected])
        expect(yield* tagged("busy")).toEqual([])
      })
    )

    it.scoped(
      "inside the caller's transaction a plan joins it instead of a group, and rolls back with it",
      () =>
        Effect.gen(function* () {
          const { sql, committer } = yield* prepare
          const failed = yield* Transaction.immediate(
            Effect.zipRight(
              committer.submit(insert(sql, 60, "joined")),
              Effect.fail("caller failed" as const)
            )
          ).pipe(Effect.flip)
          expect(failed).toBe("caller failed")
          expect(yield* tagged("joined")).toEqual([])
          yield* Transaction.immediate(committer.submit(insert(sql, 61, "joined")))
          expect(yield* tagged("joined")).toEqual([61])
        })
    )

    it.scoped(
      "adaptive: lone callers stop waiting for the turn; callers coming together are grouped again",
      () =>
        Effect.gen(function* () {
          const { sql, backend, faults } = yield* prepare
          const committer = yield* GroupCommit.make(backend)
          // Sequential callers: every group has one member, then plans run at once.
          for (let id = 100; id < 140; id++) yield* committer.submit(insert(sql, id, "adaptive"))
          // A burst: the occasional plan that still waits for the turn (within 64 calls: the last
          // probe found its caller alone) gathers the callers behind it, and a group of several
          // switches grouping back on.
          yield* Effect.forEach(
            Array.from({ length: 80 }, (_, i) => 200 + i),
            (id) => committer.submit(insert(sql, id, "adaptive")),
            { concurrency: "unbounded", discard: true }
          )
          yield* faults.clear
          yield* Effect.forEach(
            Array.from({ length: 10 }, (_, i) => 300 + i),
            (id) => committer.submit(insert(sql, id, "adaptive")),
            { concurrency: "unbounded", discard: true }
          )
          expect(count("BEGIN", yield* faults.statements)).toBe(1)
          expect((yield* tagged("adaptive")).length).toBe(130)
        })
    )

    it.scoped("a batcher answers the items of one turn with one call, each its own answer, in order", () =>
      Effect.gen(function* () {
        const calls: Array<ReadonlyArray<number>> = []
        const square = yield* GroupCommit.batcher((items: ReadonlyArray<number>) =>
          Effect.sync(() => {
            calls.push(items)
            return items.map((n) => (n < 0 ? Exit.fail(`negative ${n}`) : Exit.succeed(n * n)))
          })
        )
        const exits = yield* Effect.forEach([1, 2, -3, 4], (n) => Effect.exit(square(n)), {
          concurrency: "unbounded"
        })
        expect(exits.map((exit) => (Exit.isSuccess(exit) ? exit.value : outcome(exit)))).toEqual([
          1,
          4,
          "negative -3",
          16
        ])
        expect(calls).toEqual([[1, 2, -3, 4]])
      })
    )

    it.scoped(
      "adaptive batcher: lone callers are answered at once in their own fiber; a crowd is batched again",
      () =>
        Effect.gen(function* () {
          // Where each call of `run` ran: in the caller's fiber (at once) or the collector's (deferred).
          const ranIn: Array<{ readonly size: number; readonly caller: boolean }> = []
          let caller = ""
          const double = yield* GroupCommit.batcher((items: ReadonlyArray<number>) =>
            Effect.map(Effect.fiberId, (fiber) => {
              ranIn.push({ size: items.length, caller: String(fiber) === caller })
              return items.map((n) => Exit.succeed(n * 2))
            })
          )
          caller = String(yield* Effect.fiberId)
          for (let n = 0; n < 40; n++) expect(yield* double(n)).toBe(n * 2)
          // The first 8 wait for the turn (deferred, alone); then 31 at once, and the 32nd probes.
          expect(ranIn.slice(0, 8).every((call) => !call.caller && call.size === 1)).toBe(true)
          expect(ranIn.slice(8).map((call) => call.caller)).toEqual([...Array(31).fill(true), false])
          // Crowds of 10 at once: the next probe (now within 64 calls: the last found its caller
          // alone) waits for the turn, the rest of its crowd joins it, and grouping is back on.
          ranIn.length = 0
          for (let crowd = 0; crowd < 8; crowd++) {
            const answers = yield* Effect.forEach([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], (n) => double(n), {
              concurrency: "unbounded"
            })
            expect(answers).toEqual([2, 4, 6, 8, 10, 12, 14, 16, 18, 20])
          }
          const grouped = ranIn.findIndex((call) => call.size > 1)
          expect(grouped).toBeGreaterThanOrEqual(0)
          // Once grouped, every later crowd is one call.
          expect(ranIn.slice(grouped + 1).every((call) => call.size === 10)).toBe(true)
        })
    )

    it.scoped(
      "a batcher's `now` answers an item in the caller's step once it runs at once, and only then",
      () =>
        Effect.gen(function* () {
          const ran: Array<ReadonlyArray<number>> = []
          const answeredNow: Array<number> = []
          let sessionHeld = false
          const double = yield* GroupCommit.batcher(
            (items: ReadonlyArray<number>) =>
              Effect.sync(() => {
                ran.push(items)
                return items.map((n) => Exit.succeed(n * 2))
              }),
            {
              now: (n: number) => {
                if (sessionHeld) return undefined
                answeredNow.push(n)
                return n < 0 ? Exit.fail(n) : Exit.succeed(n * 2)
              }
            }
          )
          // While it still groups (the first 8 lone callers wait for the turn), `now` declines and
          // runs nothing.
          for (let n = 1; n <= 8; n++) {
            expect(double.now(n)).toBeUndefined()
            expect(yield* double(n)).toBe(n * 2)
          }
          expect(ran).toEqual([[1], [2], [3], [4], [5], [6], [7], [8]])
          expect(answeredNow).toEqual([])
          // At once now: answered by `now`, already done (an Exit), and `run` is not called.
          const answer = double.now(9)
          expect(answer !== undefined && Done.isDone(answer) && Exit.isSuccess(answer) && answer.value).toBe(
            18
          )
          expect(yield* double(10)).toBe(20)
          expect(Exit.isFailure(yield* Effect.exit(double(-1)))).toBe(true)
          expect(answeredNow).toEqual([9, 10, -1])
          expect(ran).toHaveLength(8)
          // When `now` cannot (its session is held), `batcher.now` says so and the batcher runs the
          // item alone with `run`.
          sessionHeld = true
          expect(double.now(11)).toBeUndefined()
          expect(yield* double(12)).toBe(24)
          expect(ran.at(-1)).toEqual([12])
        })
    )

    it.scoped(
      "adaptive batcher: probes that keep finding a lone caller come ever more rarely, up to 1 in 1,024",
      () =>
        Effect.gen(function* () {
          const deferred: Array<number> = []
          let caller = ""
          let calls = 0
          const echo = yield* GroupCommit.batcher((items: ReadonlyArray<number>) =>
            Effect.map(Effect.fiberId, (fiber) => {
              if (String(fiber) !== caller) deferred.push(calls)
              return items.map((n) => Exit.succeed(n))
            })
          )
          caller = String(yield* Effect.fiberId)
          for (calls = 1; calls <= 5_000; calls++) yield* echo(calls)
          // 8 to switch to running at once, then probes after 32, 64, 128, … 1,024 calls.
          const gaps = deferred.slice(8).map((at, index) => at - (deferred[index + 7] ?? 0))
          expect(gaps.slice(0, 7)).toEqual([32, 64, 128, 256, 512, 1024, 1024])
          // A crowd (more callers than a probe is apart) switches grouping on; alone again, the
          // committer switches back after 8 groups of one and probes after 32 calls again.
          yield* Effect.forEach(
            Array.from({ length: 1_100 }, (_, n) => n),
            (n) => echo(n),
            { concurrency: "unbounded" }
          )
          deferred.length = 0
          for (calls = 1; calls <= 8 + 32; calls++) yield* echo(calls)
          expect(deferred).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 40])
        })
    )
  })
})
