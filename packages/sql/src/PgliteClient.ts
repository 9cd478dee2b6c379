/**
 * A SqlClient for PGlite (embedded PostgreSQL in WebAssembly) on Effect 3. The published
 * `@effect/sql-pglite` requires Effect 4, so this is ours: `@effect/sql`'s `Client.make` with the
 * PostgreSQL compiler over PGlite's single session, guarded by a semaphore whose permit a
 * transaction holds from BEGIN to COMMIT/ROLLBACK. Closing the scope closes the database.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import type { PGlite, Results } from "@electric-sql/pglite"
import type { Scope } from "effect"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as Session from "./internal/session.js"

/** Where PGlite keeps its data: a directory, or memory when `dataDir` is absent. */
export interface PgliteClientConfig {
  readonly dataDir?: string | undefined
}

/** The PGlite instance behind a client, for the rare caller that needs PGlite's own API. */
export class Pglite extends Context.Tag("@keel/sql/PgliteClient/Pglite")<Pglite, PGlite>() {}

type Params = Array<unknown>

const attempt = <A>(message: string, run: () => Promise<A>): Effect.Effect<A, SqlError> =>
  Effect.tryPromise({ try: run, catch: (cause) => new SqlError({ cause, message }) })

const connectionOf = (db: PGlite): Connection => {
  const query = (sql: string, params: ReadonlyArray<unknown>): Effect.Effect<Results<object>, SqlError> =>
    attempt("Failed to execute statement", () => db.query<object>(sql, params as Params))
  const rows = (
    sql: string,
    params: ReadonlyArray<unknown>,
    transformRows: (<A extends object>(rows: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
  ) => Effect.map(query(sql, params), (result) => (transformRows ? transformRows(result.rows) : result.rows))
  return {
    execute: rows,
    executeRaw: query,
    executeValues: (sql, params) =>
      Effect.map(
        attempt("Failed to execute statement", () =>
          db.query<Array<unknown>>(sql, params as Params, { rowMode: "array" })
        ),
        (result) => result.rows
      ),
    executeUnprepared: rows,
    executeStream: (sql, params, transformRows) =>
      Stream.flatMap(Stream.fromEffect(rows(sql, params, transformRows)), Stream.fromIterable)
  }
}

/** Opens PGlite and builds a SqlClient over it. */
export const make = (
  config: PgliteClientConfig = {}
): Effect.Effect<
  {
    readonly client: SqlClient.SqlClient
    readonly pglite: PGlite
    /** The session itself, for transactions that need no scope (used by `Database`). */
    readonly session: Session.SessionClient
  },
  SqlError,
  Scope.Scope | Reactivity.Reactivity
> =>
  Effect.gen(function* () {
    // Loaded on demand, like every driver: importing @keel/sql must not load PGlite or pg.
    const [{ PGlite }, { makeCompiler }] = yield* Effect.promise(() =>
      Promise.all([import("@electric-sql/pglite"), import("@effect/sql-pg/PgClient")])
    )
    const pglite = yield* Effect.acquireRelease(
      attempt("Failed to open PGlite", async () => {
        const db = new PGlite(config.dataDir)
        await db.waitReady
        return db
      }),
      (db) => Effect.promise(() => (db.closed ? Promise.resolve() : db.close()))
    )
    const session = yield* Session.make({
      connection: connectionOf(pglite),
      compiler: makeCompiler(),
      system: "postgresql"
    })
    return { client: session.client, pglite, session }
  })

/** A layer providing the PGlite-backed `SqlClient` and the `Pglite` instance. */
export const layer = (config: PgliteClientConfig = {}): Layer.Layer<SqlClient.SqlClient | Pglite, SqlError> =>
  Layer.scopedContext(
    Effect.map(make(config), ({ client, pglite }) =>
      Context.make(SqlClient.SqlClient, client).pipe(Context.add(Pglite, pglite))
    )
  ).pipe(Layer.provide(Reactivity.layer))
