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
import type { Scope } from "effect"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type { SyncDriver } from "../Backend.js"
import { classify, type DbError } from "../DbError.js"
import * as Session from "./session.js"

/** How many prepared statements a connection keeps (least recently used are dropped). */
const cacheCapacity = 500

/** A prepared statement, whether it returns rows, and when it was last used (for eviction). */
interface Prepared {
  readonly statement: Sqlite.Statement
  readonly reader: boolean
  used: number
}
type Rows = <A extends object>(rows: ReadonlyArray<A>) => ReadonlyArray<A>

const connectionOver = (
  db: Sqlite.Database
): { readonly connection: Connection; readonly driver: SyncDriver } => {
  // Each entry keeps `reader` beside the statement: better-sqlite3 computes it natively on every
  // read. A hit only stamps the entry (no reordering of the map on the hot path); the least
  // recently used entry is found by a scan when the cache overflows, which is rare.
  const cache = new Map<string, Prepared>()
  let clock = 0
  const evict = () => {
    let oldest: string | undefined
    let oldestUse = Number.POSITIVE_INFINITY
    for (const [sql, entry] of cache) {
      if (entry.used < oldestUse) {
        oldestUse = entry.used
        oldest = sql
      }
    }
    if (oldest !== undefined) cache.delete(oldest)
  }
  const prepare = (sql: string): Prepared => {
    const cached = cache.get(sql)
    if (cached !== undefined) {
      cached.used = ++clock
      return cached
    }
    const statement = db.prepare(sql)
    const prepared = { statement, reader: statement.reader, used: ++clock }
    cache.set(sql, prepared)
    if (cache.size > cacheCapacity) evict()
    return prepared
  }
  const attempt = <A>(run: () => A): Effect.Effect<A, SqlError> =>
    Effect.try({
      try: run,
      catch: (cause) => new SqlError({ cause, message: "Failed to execute statement" })
    })
  // Parameters are bound as one array (better-sqlite3's anonymous parameters), without a spread.
  const runSync = (
    { statement, reader }: Prepared,
    params: ReadonlyArray<unknown>
  ): ReadonlyArray<unknown> => {
    if (!reader) {
      statement.run(params)
      return []
    }
    // `all`, never `get`: a write with RETURNING that is not stepped to its end commits (in
    // autocommit) inside sqlite3_reset, which skips the WAL auto-checkpoint (see hazards.test.ts).
    return statement.all(params) as ReadonlyArray<unknown>
  }
  const rows = (statement: () => Prepared, params: ReadonlyArray<unknown>, transformRows: Rows | undefined) =>
    attempt(() => {
      const result = runSync(statement(), params) as ReadonlyArray<object>
      return transformRows ? transformRows(result) : result
    })
  const unprepared = (sql: string): Prepared => {
    const statement = db.prepare(sql)
    return { statement, reader: statement.reader, used: 0 }
  }
  const connection: Connection = {
    execute: (sql, params, transformRows) => rows(() => prepare(sql), params, transformRows),
    executeUnprepared: (sql, params, transformRows) => rows(() => unprepared(sql), params, transformRows),
    executeRaw: (sql, params) =>
      attempt(() => {
        const { statement, reader } = prepare(sql)
        return reader ? statement.all(params) : statement.run(params)
      }),
    executeValues: (sql, params) =>
      attempt(() => {
        const { statement, reader } = prepare(sql)
        if (!reader) {
          statement.run(params)
          return []
        }
        statement.raw(true)
        try {
          return statement.all(params) as ReadonlyArray<ReadonlyArray<unknown>>
        } finally {
          statement.raw(false)
        }
      }),
    executeStream: (sql, params, transformRows) =>
      Stream.flatMap(Stream.fromEffect(rows(() => prepare(sql), params, transformRows)), Stream.fromIterable)
  }
  const driver: SyncDriver = {
    run: (sql, params) => runSync(prepare(sql), params),
    count: (sql, params) => {
      const { statement, reader } = prepare(sql)
      // A statement with RETURNING is stepped to its end (see `runSync`); its rows are what it changed.
      return reader ? statement.all(params).length : statement.run(params).changes
    },
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
