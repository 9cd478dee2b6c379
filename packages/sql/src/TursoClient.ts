/**
 * A SqlClient for the Turso engine (`@tursodatabase/database`: the Rust rewrite of SQLite, where
 * seed 000's phantom duplicates happened). No Effect client exists for it, so this is ours, like
 * the PGlite one: `@effect/sql`'s `Client.make` with the SQLite compiler over ONE engine connection,
 * guarded by the session semaphore whose permit a transaction holds from BEGIN to COMMIT/ROLLBACK.
 *
 * Why one connection and no busy wait: the engine runs on the Node thread. Two connections of one
 * process that contend get "database is locked" at once; a busy `timeout` would block the event
 * loop while the lock holder — on the same loop — can never commit. So the busy timeout stays 0
 * and waiting is the session semaphore's (in process) or the retry schedule's (across processes).
 *
 * Hazards of the engine handled here, at one place (each pinned by test/Turso*.test.ts):
 * - a statement prepared before a schema change and stepped after it (`SELECT *`, `RETURNING *`)
 *   panics in the binding and aborts the process (0.7.2): statements are prepared per execution
 *   and never cached;
 * - `PRAGMA auto_vacuum` panics (0.4.4 and 0.7.2), and on engines without savepoints (0.4.x)
 *   `ROLLBACK TO` panics: such statements are refused, typed, and never reach the engine;
 * - with multiprocess_wal (0.7.2) a connection does not see tables another process created until
 *   it next takes the write lock: a statement that names a table it cannot see, outside a
 *   transaction, takes the lock once (BEGIN IMMEDIATE, ROLLBACK) and is prepared again.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import * as Statement from "@effect/sql/Statement"
import type { Scope } from "effect"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as Session from "./internal/session.js"

/** A prepared statement of the engine (the part of its API Keel uses). */
export interface EngineStatement {
  all(...params: Array<unknown>): Promise<Array<unknown>>
  raw(toggle?: boolean): unknown
  close(): unknown
}

/** An engine connection (the part of its API Keel uses). */
export interface EngineDatabase {
  prepare(sql: string): EngineStatement | Promise<EngineStatement>
  close(): Promise<void>
  readonly inTransaction?: boolean
}

/** The engine's options at open that Keel sets. */
export interface EngineOptions {
  /** The engine's busy timeout in ms: always 0 (a wait would block the event loop, see above). */
  readonly timeout?: number
  readonly experimental?: Array<"triggers" | "without_rowid" | "multiprocess_wal">
}

/**
 * The engine module: `@tursodatabase/database` by default. Tests pass another version of it
 * (`turso-0.4.4`) to run Keel on the engine seed 000 happened on.
 */
export interface Engine {
  connect(path: string, options?: EngineOptions): Promise<EngineDatabase>
}

/** Where the database lives and how it is shared. */
export interface TursoClientConfig {
  /** A file path, or `:memory:`. */
  readonly path: string
  /**
   * Open with the engine's experimental `multiprocess_wal`, so that other processes can open the
   * file too (each of them must). Without it a second process cannot open the file at all.
   */
  readonly multiprocess?: boolean | undefined
  /** The engine module; default `@tursodatabase/database`. */
  readonly engine?: Engine | undefined
}

/** The engine connection behind a client, for the rare caller that needs the engine's own API. */
export class Turso extends Context.Tag("@keel/sql/TursoClient/Turso")<Turso, EngineDatabase>() {}

/** The code of a statement refused because it is known to crash the engine. */
export const refusedCode = "KEEL_REFUSED"

/** Statements that panic inside the engine (the panic aborts the whole process). */
const crashing = (sql: string, savepoints: boolean): string | undefined => {
  if (/^\s*PRAGMA\s+(?:\w+\s*\.\s*)?auto_vacuum\b/i.test(sql))
    return "PRAGMA auto_vacuum panics in the Turso engine"
  if (!savepoints && /^\s*ROLLBACK\s+(?:TRANSACTION\s+)?TO\b/i.test(sql))
    return "ROLLBACK TO panics in a Turso engine without savepoints"
  return undefined
}

/** A parse error naming a schema object the connection cannot see. */
const unseenSchema = /no such (table|index|view|trigger)/i

const attempt = <A>(message: string, run: () => Promise<A>): Effect.Effect<A, SqlError> =>
  Effect.tryPromise({ try: run, catch: (cause) => new SqlError({ cause, message }) })

type Rows = <A extends object>(rows: ReadonlyArray<A>) => ReadonlyArray<A>

/**
 * The connection over one engine database. Every call prepares, steps to the end (`all`, so a
 * write with RETURNING is complete before its result is used) and closes its statement.
 */
const connectionOf = (db: EngineDatabase, savepoints: boolean, multiprocess: boolean): Connection => {
  const step = async (sql: string) => {
    const statement = await db.prepare(sql)
    try {
      await statement.all()
    } finally {
      statement.close()
    }
  }
  const prepare = async (sql: string): Promise<EngineStatement> => {
    try {
      return await db.prepare(sql)
    } catch (error) {
      const unseen =
        multiprocess &&
        db.inTransaction !== true &&
        error instanceof Error &&
        unseenSchema.test(error.message)
      if (!unseen) throw error
      await step("BEGIN IMMEDIATE")
      await step("ROLLBACK")
      return await db.prepare(sql)
    }
  }
  const run = (sql: string, params: ReadonlyArray<unknown>, raw: boolean) =>
    attempt("Failed to execute statement", async () => {
      const refused = crashing(sql, savepoints)
      if (refused !== undefined)
        throw Object.assign(new Error(`statement refused: ${refused}`), { code: refusedCode })
      const statement = await prepare(sql)
      try {
        if (raw) statement.raw(true)
        return await statement.all(...params)
      } finally {
        statement.close()
      }
    })
  const rows = (sql: string, params: ReadonlyArray<unknown>, transformRows: Rows | undefined) =>
    Effect.map(run(sql, params, false), (result) => {
      const objects = result as ReadonlyArray<object>
      return transformRows ? transformRows(objects) : objects
    })
  return {
    execute: rows,
    executeRaw: (sql, params) => run(sql, params, false),
    executeValues: (sql, params) =>
      Effect.map(run(sql, params, true), (result) => result as ReadonlyArray<ReadonlyArray<unknown>>),
    executeUnprepared: rows,
    executeStream: (sql, params, transformRows) =>
      Stream.flatMap(Stream.fromEffect(rows(sql, params, transformRows)), Stream.fromIterable)
  }
}

/** The experimental features Keel's schemas need (event triggers, the cursor table), plus multi-process. */
const experimentalFeatures = (multiprocess: boolean): EngineOptions["experimental"] =>
  multiprocess ? ["triggers", "without_rowid", "multiprocess_wal"] : ["triggers", "without_rowid"]

/**
 * True when the engine supports SAVEPOINT. Preparing one is safe on every version (an engine
 * without them rejects it at parse time); it is never executed.
 */
const probeSavepoints = (db: EngineDatabase): Effect.Effect<boolean> =>
  Effect.promise(async () => {
    try {
      const statement = await db.prepare("SAVEPOINT keel_probe")
      statement.close()
      return true
    } catch {
      return false
    }
  })

/** Opens the engine database (closed with the scope) and builds a SqlClient over its one connection. */
export const make = (
  config: TursoClientConfig
): Effect.Effect<
  {
    readonly client: SqlClient.SqlClient
    readonly database: EngineDatabase
    /** The session itself, for transactions that need no scope (used by `Database`). */
    readonly session: Session.SessionClient
  },
  SqlError,
  Scope.Scope | Reactivity.Reactivity
> =>
  Effect.gen(function* () {
    // Loaded on demand, like every driver: importing @keel/sql must not load the engine.
    const engine: Engine = config.engine ?? (yield* Effect.promise(() => import("@tursodatabase/database")))
    const database = yield* Effect.acquireRelease(
      attempt("Failed to open the Turso database", () =>
        engine.connect(config.path, {
          timeout: 0,
          experimental: experimentalFeatures(config.multiprocess === true)
        })
      ),
      (db) => Effect.promise(() => db.close().catch(() => undefined))
    )
    const savepoints = yield* probeSavepoints(database)
    const session = yield* Session.make({
      connection: connectionOf(database, savepoints, config.multiprocess === true),
      compiler: Statement.makeCompilerSqlite(),
      system: "sqlite"
    })
    return { client: session.client, database, session }
  })

/** A layer providing the Turso-backed `SqlClient` and the engine connection. */
export const layer = (config: TursoClientConfig): Layer.Layer<SqlClient.SqlClient | Turso, SqlError> =>
  Layer.scopedContext(
    Effect.map(make(config), ({ client, database }) =>
      Context.make(SqlClient.SqlClient, client).pipe(Context.add(Turso, database))
    )
  ).pipe(Layer.provide(Reactivity.layer))
