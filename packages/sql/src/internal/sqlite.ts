/**
 * SQLite through better-sqlite3, driven through our session client.
 *
 * The connection is ours rather than `@effect/sql-sqlite-node`'s because of two defects of the
 * stock client (both pinned in test/hazards.test.ts):
 * - its prepare cache (an Effect `Cache`) also caches a *failed* prepare for ten minutes: a
 *   statement first prepared while another process held the schema lock fails with SQLITE_BUSY
 *   on every later attempt, so no retry can ever succeed;
 * - its acquirer releases the session before the statement runs, so a plain statement of one
 *   fiber can land inside another fiber's transaction.
 * This cache keeps only statements that prepared successfully.
 */
import type * as Reactivity from "@effect/experimental/Reactivity"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import * as Statement from "@effect/sql/Statement"
import Sqlite from "better-sqlite3"
import { Effect, type Scope, Stream } from "effect"
import type { SyncDriver } from "../Backend.js"
import { classify, type DbError } from "../DbError.js"
import * as Session from "./session.js"

/** How many prepared statements a connection keeps (least recently used are dropped). */
const cacheCapacity = 500

type Parameters = Array<unknown>
type Rows = <A extends object>(rows: ReadonlyArray<A>) => ReadonlyArray<A>

const connectionOver = (
  db: Sqlite.Database
): { readonly connection: Connection; readonly driver: SyncDriver } => {
  const cache = new Map<string, Sqlite.Statement>()
  const prepare = (sql: string): Sqlite.Statement => {
    const cached = cache.get(sql)
    if (cached !== undefined) {
      cache.delete(sql)
      cache.set(sql, cached)
      return cached
    }
    const statement = db.prepare(sql)
    cache.set(sql, statement)
    if (cache.size > cacheCapacity) {
      const oldest = cache.keys().next()
      if (oldest.done !== true) cache.delete(oldest.value)
    }
    return statement
  }
  const attempt = <A>(run: () => A): Effect.Effect<A, SqlError> =>
    Effect.try({
      try: run,
      catch: (cause) => new SqlError({ cause, message: "Failed to execute statement" })
    })
  const runSync = (prepared: Sqlite.Statement, params: ReadonlyArray<unknown>): ReadonlyArray<unknown> => {
    if (!prepared.reader) {
      prepared.run(...(params as Parameters))
      return []
    }
    // `all`, never `get`: a write with RETURNING that is not stepped to its end commits (in
    // autocommit) inside sqlite3_reset, which skips the WAL auto-checkpoint (see hazards.test.ts).
    return prepared.all(...(params as Parameters)) as ReadonlyArray<unknown>
  }
  const rows = (
    statement: () => Sqlite.Statement,
    params: ReadonlyArray<unknown>,
    transformRows: Rows | undefined
  ) =>
    attempt(() => {
      const result = runSync(statement(), params) as ReadonlyArray<object>
      return transformRows ? transformRows(result) : result
    })
  const connection: Connection = {
    execute: (sql, params, transformRows) => rows(() => prepare(sql), params, transformRows),
    executeUnprepared: (sql, params, transformRows) => rows(() => db.prepare(sql), params, transformRows),
    executeRaw: (sql, params) =>
      attempt(() => {
        const prepared = prepare(sql)
        return prepared.reader
          ? prepared.all(...(params as Parameters))
          : prepared.run(...(params as Parameters))
      }),
    executeValues: (sql, params) =>
      attempt(() => {
        const prepared = prepare(sql)
        if (!prepared.reader) {
          prepared.run(...(params as Parameters))
          return []
        }
        prepared.raw(true)
        try {
          return prepared.all(...(params as Parameters)) as ReadonlyArray<ReadonlyArray<unknown>>
        } finally {
          prepared.raw(false)
        }
      }),
    executeStream: (sql, params, transformRows) =>
      Stream.flatMap(Stream.fromEffect(rows(() => prepare(sql), params, transformRows)), Stream.fromIterable)
  }
  const driver: SyncDriver = {
    run: (sql, params) => runSync(prepare(sql), params),
    inTransaction: () => db.inTransaction
  }
  return { connection, driver }
}

/** Opens `filename` (closed with the scope) and returns a session client over its one connection. */
export const make = (
  filename: string
): Effect.Effect<Session.SessionClient, DbError, Scope.Scope | Reactivity.Reactivity> =>
  Effect.gen(function* () {
    const db = yield* Effect.acquireRelease(
      Effect.try({
        try: () => new Sqlite(filename),
        catch: (cause) => classify(new SqlError({ cause, message: "Failed to open database" }))
      }),
      (db) => Effect.sync(() => db.close())
    )
    const { connection, driver } = connectionOver(db)
    return yield* Session.make({
      connection,
      compiler: Statement.makeCompilerSqlite(),
      system: "sqlite",
      driver
    })
  })
