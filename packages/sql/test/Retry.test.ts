import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, expectTypeOf, it, layer } from "@effect/vitest"
import { Backend, DbError, Retry, Transaction } from "@keel/sql"
import { Chunk, Duration, Effect, FastCheck, Layer, Option, Schedule } from "effect"
import * as Faults from "./support/Faults.js"
import * as TestDatabase from "./support/TestDatabase.js"

/** A small, fast policy for tests: the behaviour under test is which failures are retried. */
const quick = Retry.policy(Faults.quickRetry)

const rows = (tag: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const result = yield* sql<{ n: number }>`SELECT COUNT(*) AS n FROM sends WHERE tag = ${tag}`
    return Number(result[0]?.n ?? 0)
  })

const insert = (tag: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql`INSERT INTO sends (tag) VALUES (${tag})`)

const insertKeyed = (tag: string, key: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.onDialectOrElse({
      pg: () => sql`INSERT INTO sends (tag, key) VALUES (${tag}, ${key}) ON CONFLICT (key) DO NOTHING`,
      orElse: () => sql`INSERT OR IGNORE INTO sends (tag, key) VALUES (${tag}, ${key})`
    })
  )

const selectByKey = (key: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ tag: string }>`SELECT tag FROM sends WHERE key = ${key}`)

describe("Retry (types)", () => {
  it("a plain DML effect does not type-check as retryable work", () => {
    const plainInsert = Effect.flatMap(
      SqlClient.SqlClient,
      (sql) => sql`INSERT INTO sends (tag) VALUES ('x')`
    )
    // @ts-expect-error a write is retryable only as Retry.transaction, Retry.keyed or Retry.read
    const attempt = () => Retry.run(plainInsert)
    expect(typeof attempt).toBe("function")
    const proven = Retry.transaction(plainInsert)
    expectTypeOf(proven.proof).toEqualTypeOf<Retry.Proof>()
    expect(proven.proof).toBe("transaction")
  })
})

describe("Retry policy", () => {
  it.effect.prop(
    "every delay is finite, capped, and the schedule is bounded in attempts and time",
    {
      base: FastCheck.integer({ min: 1, max: 10_000 }),
      factor: FastCheck.double({ min: 1, max: 10, noNaN: true }),
      maxDelay: FastCheck.integer({ min: 1, max: 300_000 }),
      maxRetries: FastCheck.integer({ min: 0, max: 1000 }),
      maxElapsed: FastCheck.integer({ min: 1, max: 3_600_000 })
    },
    ({ base, factor, maxDelay, maxRetries, maxElapsed }) =>
      Effect.gen(function* () {
        const policy = Retry.policy({
          base: Duration.millis(base),
          factor,
          maxDelay: Duration.millis(maxDelay),
          maxRetries,
          maxElapsed: Duration.millis(maxElapsed)
        })
        const delays = yield* Schedule.run(
          Schedule.delays(policy),
          0,
          Array.from({ length: 1100 }, () => "busy")
        )
        const millis = Chunk.toReadonlyArray(delays).map(Duration.toMillis)
        // Schedule.run also emits the output of the final, stopping step.
        expect(millis.length).toBeLessThanOrEqual(maxRetries + 1)
        for (const delay of millis) {
          expect(Number.isFinite(delay)).toBe(true)
          expect(delay).toBeGreaterThanOrEqual(0)
          expect(delay).toBeLessThanOrEqual(maxDelay)
        }
      }),
    { fastCheck: { numRuns: 60 } }
  )

  it.live("Retry.run makes exactly maxRetries + 1 attempts of work that keeps failing transiently", () =>
    Effect.gen(function* () {
      let attempts = 0
      const busy = Effect.suspend(() => {
        attempts++
        return Effect.fail(new DbError.Busy({ code: "SQLITE_BUSY", message: "database is locked" }))
      })
      const error = yield* Retry.run(Retry.read(busy), quick).pipe(Effect.flip)
      expect(error._tag).toBe("Busy")
      expect(attempts).toBe(11)
    })
  )

  it.effect("the default policy starts near 5 ms, grows, and caps each delay at 250 ms", () =>
    Effect.gen(function* () {
      const policy = Retry.policy(Retry.defaultOptions)
      const delays = yield* Schedule.run(
        Schedule.delays(policy),
        0,
        Array.from({ length: 100 }, () => "busy")
      )
      const millis = Chunk.toReadonlyArray(delays).map(Duration.toMillis)
      expect(millis.length).toBeLessThanOrEqual(Retry.defaultOptions.maxRetries + 1)
      expect(millis[0]).toBeGreaterThanOrEqual(2)
      expect(millis[0]).toBeLessThanOrEqual(5)
      expect(Math.max(...millis)).toBeLessThanOrEqual(250)
      expect(millis.at(-2)).toBeGreaterThanOrEqual(125)
    })
  )
})

TestDatabase.describeEach("Retry", (kind) => {
  const database = Layer.provideMerge(Faults.layer, TestDatabase.layer(kind))
  layer(database, { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("set up", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE sends (id INTEGER PRIMARY KEY ${sql.onDialectOrElse({
          pg: () => sql`GENERATED ALWAYS AS IDENTITY`,
          orElse: () => sql``
        })}, tag TEXT NOT NULL, key TEXT UNIQUE)`
      })
    )

    // The proofs of a whole transaction, for a body of any size (Retry.transaction) and for one
    // statement (Retry.single: on SQLite BEGIN, the statement and COMMIT run in one synchronous step
    // of the driver, where the faults are injected too).
    const writers = {
      "Retry.transaction": (tag: string) => Retry.run(Retry.transaction(insert(tag)), quick),
      "Retry.single": (tag: string) =>
        Effect.flatMap(SqlClient.SqlClient, (sql) =>
          Retry.run(Retry.single(sql`INSERT INTO sends (tag) VALUES (${tag})`), quick)
        )
    }
    const begins = Effect.map(
      Effect.flatMap(Faults.Faults, (faults) => faults.statements),
      (statements) => statements.filter((statement) => statement.startsWith("BEGIN")).length
    )
    /** The realistic unknown in each dialect: SQLite reports busy after the commit took effect;
     * PostgreSQL never reports an SQLSTATE for a commit that succeeded, but the connection can drop
     * after COMMIT was sent. */
    const commitUnknown = (dialect: "sqlite" | "pg"): Faults.Fault =>
      dialect === "sqlite"
        ? { match: /^COMMIT/, timing: "after", error: "busy" }
        : { match: /^COMMIT/, timing: "after", error: "connection", breakConnection: true }

    it.effect(
      "Retry.autocommit: one statement alone on PostgreSQL (no BEGIN), never re-run there after a lock error (it may have run); elsewhere a transaction re-run after one",
      () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const backend = yield* Backend.Backend
          const faults = yield* Faults.Faults
          yield* faults.clear
          yield* faults.inject({ match: /^INSERT INTO sends/, timing: "before", error: "locked", times: 2 })
          const outcome = yield* Effect.either(
            Retry.run(
              Retry.autocommit(sql`INSERT INTO sends (tag) VALUES ('autocommit-lock')`, backend),
              quick
            )
          )
          if (kind === "postgres") {
            expect(outcome._tag === "Left" && outcome.left._tag).toBe("CommitOutcomeUnknown")
            expect(yield* faults.fired).toBe(1)
            expect(yield* begins).toBe(0)
            expect(yield* rows("autocommit-lock")).toBe(0)
          } else {
            expect(outcome._tag).toBe("Right")
            expect(yield* faults.fired).toBe(2)
            expect(yield* begins).toBe(3)
            expect(yield* rows("autocommit-lock")).toBe(1)
          }
        })
    )

    if (kind === "postgres") {
      it.effect(
        "Retry.autocommit on PostgreSQL: a connection lost after the statement ran is CommitOutcomeUnknown and is not re-run",
        () =>
          Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            const backend = yield* Backend.Backend
            const faults = yield* Faults.Faults
            yield* faults.clear
            yield* faults.inject({ match: /^INSERT INTO sends/, timing: "after", error: "connection" })
            const error = yield* Retry.run(
              Retry.autocommit(sql`INSERT INTO sends (tag) VALUES ('autocommit-lost')`, backend),
              quick
            ).pipe(Effect.flip)
            expect(error._tag).toBe("CommitOutcomeUnknown")
            expect(yield* faults.fired).toBe(1)
            expect(yield* rows("autocommit-lost")).toBe(1)
          })
      )
    }

    for (const [name, write] of Object.entries(writers)) {
      const tag = (what: string) => `${name}-${what}`

      it.effect(`${name}: Busy at BEGIN three times, then success, commits exactly once`, () =>
        Effect.gen(function* () {
          const faults = yield* Faults.Faults
          yield* faults.clear
          yield* faults.inject({ match: /^BEGIN/, timing: "before", error: "busy", times: 3 })
          yield* write(tag("busy-begin"))
          expect(yield* faults.fired).toBe(3)
          expect(yield* begins).toBe(4)
          expect(yield* rows(tag("busy-begin"))).toBe(1)
        })
      )

      it.effect(`${name}: a lock error reported after a write rolls it back; the re-run leaves one row`, () =>
        Effect.gen(function* () {
          const faults = yield* Faults.Faults
          yield* faults.clear
          yield* faults.inject({ match: /^INSERT INTO sends/, timing: "after", error: "locked", times: 2 })
          yield* write(tag("post-write-lock"))
          expect(yield* faults.fired).toBe(2)
          expect(yield* begins).toBe(3)
          expect(yield* rows(tag("post-write-lock"))).toBe(1)
        })
      )

      it.effect(`${name}: a COMMIT rejected with a transient error is rolled back and re-run: one row`, () =>
        Effect.gen(function* () {
          const faults = yield* Faults.Faults
          yield* faults.clear
          yield* faults.inject({ match: /^COMMIT/, timing: "before", error: "busy" })
          yield* write(tag("commit-rejected"))
          expect(yield* begins).toBe(2)
          expect(yield* rows(tag("commit-rejected"))).toBe(1)
        })
      )

      it.effect(
        `${name}: a COMMIT whose outcome is unknown is never re-run: CommitOutcomeUnknown, one row`,
        () =>
          Effect.gen(function* () {
            const faults = yield* Faults.Faults
            const backend = yield* Backend.Backend
            yield* faults.clear
            yield* faults.inject(commitUnknown(backend.dialect))
            const error = yield* write(tag("commit-unknown")).pipe(Effect.flip)
            expect(error._tag).toBe("CommitOutcomeUnknown")
            expect(yield* begins).toBe(1)
            expect(yield* rows(tag("commit-unknown"))).toBe(1)
          })
      )

      it.effect(`${name}: a connection lost during the write is typed, not re-run, and leaves nothing`, () =>
        Effect.gen(function* () {
          const faults = yield* Faults.Faults
          yield* faults.clear
          yield* faults.inject({
            match: /^INSERT INTO sends/,
            timing: "after",
            error: "connection",
            breakConnection: true
          })
          const error = yield* write(tag("lost")).pipe(Effect.flip)
          expect(error).toHaveProperty("_tag")
          expect(DbError.classify(error)._tag).toBe("ConnectionLost")
          expect(yield* begins).toBe(1)
          yield* faults.clear
          expect(yield* rows(tag("lost"))).toBe(0)
          yield* write(tag("after-lost"))
          expect(yield* rows(tag("after-lost"))).toBe(1)
        })
      )
    }

    it.effect("a keyed write is retried after an unknown COMMIT outcome and leaves exactly one row", () =>
      Effect.gen(function* () {
        const faults = yield* Faults.Faults
        const backend = yield* Backend.Backend
        yield* faults.clear
        yield* faults.inject(commitUnknown(backend.dialect))
        const found = yield* Retry.run(
          Retry.keyed({
            key: "k-1",
            write: Transaction.immediate(insertKeyed("keyed", "k-1")),
            read: selectByKey("k-1")
          }),
          quick
        )
        expect(found.map((row) => row.tag)).toEqual(["keyed"])
        expect(yield* rows("keyed")).toBe(1)
      })
    )

    it.effect("a non-transient failure is not retried", () =>
      Effect.gen(function* () {
        const faults = yield* Faults.Faults
        yield* faults.clear
        yield* Retry.run(Retry.transaction(insertKeyed("unique", "k-unique")), quick)
        const error = yield* Retry.run(
          Retry.transaction(
            Effect.flatMap(
              SqlClient.SqlClient,
              (sql) => sql`INSERT INTO sends (tag, key) VALUES ('unique', 'k-unique')`
            )
          ),
          quick
        ).pipe(Effect.flip)
        expect(error._tag).toBe("SqlError")
        const begins = (yield* faults.statements).filter((statement) => statement.startsWith("BEGIN"))
        expect(begins.length).toBe(2)
      })
    )

    it.effect("a transaction that stays busy gives up within the policy's bounds with the typed error", () =>
      Effect.gen(function* () {
        const faults = yield* Faults.Faults
        yield* faults.clear
        yield* faults.inject({ match: /^BEGIN/, timing: "before", error: "busy", times: 1000 })
        const started = Date.now()
        const error = yield* Retry.run(
          Retry.transaction(insert("never")),
          Retry.policy({
            base: Duration.millis(1),
            factor: 2,
            maxDelay: Duration.millis(10),
            maxRetries: 6,
            maxElapsed: Duration.seconds(2)
          })
        ).pipe(Effect.flip)
        expect(Date.now() - started).toBeLessThan(2_000)
        expect(error._tag === "Busy" || error._tag === "SerializationFailure").toBe(true)
        const begins = (yield* faults.statements).filter((statement) => statement.startsWith("BEGIN"))
        expect(begins.length).toBe(7)
        yield* faults.clear
        expect(yield* rows("never")).toBe(0)
      })
    )

    it.effect(
      "inside an open transaction, Retry.transaction runs once: only the outermost can be re-run",
      () =>
        Effect.gen(function* () {
          const faults = yield* Faults.Faults
          yield* faults.clear
          yield* faults.inject({ match: /^INSERT INTO sends/, timing: "before", error: "busy", times: 1 })
          const error = yield* Transaction.immediate(
            Retry.run(Retry.transaction(insert("nested")), quick)
          ).pipe(Effect.flip)
          expect(error._tag === "SqlError" || error._tag === "Busy").toBe(true)
          yield* faults.clear
          yield* Retry.run(Retry.transaction(Retry.run(Retry.transaction(insert("nested")), quick)), quick)
          expect(yield* rows("nested")).toBe(1)
        })
    )

    it.effect("Retry.read re-runs a read after a busy error", () =>
      Effect.gen(function* () {
        const faults = yield* Faults.Faults
        yield* faults.clear
        yield* faults.inject({ match: /^SELECT COUNT/, timing: "before", error: "busy", times: 2 })
        const count = yield* Retry.run(Retry.read(rows("nothing")), quick)
        expect(count).toBe(0)
        expect(Option.some(yield* faults.fired)).toEqual(Option.some(2))
      })
    )
  })
})
