/**
 * PostgreSQL connections name the parameterised statements they run repeatedly
 * (`internal/prepared.ts`), so the server parses and plans each once per connection; `?prepare=false`
 * turns that off. One connection per pool here, so `pg_prepared_statements` (a per-session view)
 * shows what the pool's connection holds.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, layer } from "@effect/vitest"
import { Database } from "@keel/sql"
import { Effect, Either } from "effect"
import * as TestDatabase from "./support/TestDatabase.js"

/** How many statements the current session holds prepared whose text contains `marker`. */
const preparedWith = (marker: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{
      n: number
    }>`SELECT COUNT(*) AS n FROM pg_prepared_statements WHERE strpos(statement, ${marker}) > 0`
    return Number(rows[0]?.n ?? 0)
  })

/** Tests on a fresh database whose pool has one connection (each call: a connection of its own). */
const onOneConnection = () =>
  layer(TestDatabase.layer("postgres", { maxConnections: 1 }), { timeout: 60_000, excludeTestServices: true })

describe.skipIf(!TestDatabase.kinds.includes("postgres"))("PostgreSQL prepared statements", () => {
  onOneConnection()((it) => {
    it.effect("a parameterised statement is prepared on its second run; one run only is not", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const sums: Array<number> = []
        for (const n of [1, 2, 3]) {
          const [row] = yield* sql<{ v: number }>`SELECT CAST(${n} AS INTEGER) + 100 AS v`
          sums.push(Number(row?.v))
        }
        expect(sums).toEqual([101, 102, 103])
        expect(yield* preparedWith("+ 100 AS v")).toBe(1)
        yield* sql`SELECT CAST(${1} AS INTEGER) + 200 AS once`
        expect(yield* preparedWith("+ 200 AS once")).toBe(0)
        // A bulk statement (more than 32 parameters) is never named: its plan is large, its planning small.
        const bulk = Array.from({ length: 33 }, (_, i) => i)
        for (let run = 0; run < 3; run++) yield* sql`SELECT 1 AS bulk WHERE 0 IN ${sql.in(bulk)}`
        expect(yield* preparedWith("AS bulk")).toBe(0)
      })
    )

    it.effect(
      "a prepared statement whose plan went stale (a column added) fails once as PostgreSQL reports it, then runs prepared again",
      () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          yield* sql`CREATE TABLE stale_plans (id INTEGER PRIMARY KEY)`
          yield* sql`INSERT INTO stale_plans (id) VALUES (1)`
          const select = sql<{ id: number; extra?: number | null }>`SELECT * FROM stale_plans WHERE id = ${1}`
          yield* select
          yield* select
          expect(yield* preparedWith("FROM stale_plans")).toBe(1)
          yield* sql`ALTER TABLE stale_plans ADD COLUMN extra INTEGER`
          const stale = yield* Effect.either(select)
          expect(Either.isLeft(stale) && Reflect.get(Object(stale.left.cause), "code")).toBe("0A000")
          expect(yield* select).toEqual([{ id: 1, extra: null }])
          expect(yield* select).toEqual([{ id: 1, extra: null }])
        })
    )

    it.effect("?prepare=false in the DSN names nothing", () =>
      Effect.gen(function* () {
        const info = yield* TestDatabase.TestDatabase
        const count = yield* Effect.scoped(
          Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            for (const n of [1, 2, 3]) yield* sql`SELECT CAST(${n} AS INTEGER) + 300 AS unnamed`
            return yield* preparedWith("+ 300 AS unnamed")
          }).pipe(Effect.provide(Database.layer(`${info.dsn}?prepare=false`, { maxConnections: 1 })))
        )
        expect(count).toBe(0)
      })
    )
  })

  // A connection of its own: the limit, once reached, holds for the connection's life.
  onOneConnection()((it) => {
    it.effect("statements whose text varies with their input stop being named at the limit", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const before = yield* preparedWith("")
        // 255 different texts (two IN lists, of 1–15 and 1–17 values), each run twice.
        for (let left = 1; left <= 15; left++) {
          for (let right = 1; right <= 17; right++) {
            const a = Array.from({ length: left }, (_, i) => i)
            const b = Array.from({ length: right }, (_, i) => i)
            for (let run = 0; run < 2; run++)
              yield* sql`SELECT 1 AS many WHERE 0 IN ${sql.in(a)} AND 0 IN ${sql.in(b)}`
          }
        }
        const named = (yield* preparedWith("")) - before
        expect(named).toBeGreaterThan(0)
        expect(yield* preparedWith("")).toBeLessThanOrEqual(200)
      })
    )
  })
})
