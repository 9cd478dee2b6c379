/**
 * libSQL through `@libsql/client` and `@effect/sql-libsql`.
 *
 * Local (`file:`): our own connection over the SDK, driven through the session client, with
 * transactions begun by `BEGIN IMMEDIATE` on that same connection. Two SDK defects are handled
 * here, at one place:
 * - a statement that fails with SQLITE_BUSY/SQLITE_LOCKED is left "in progress" (every version up
 *   to 0.17.4): every later COMMIT on the connection fails, while plain writes seem to succeed and
 *   are never committed. The connection is therefore replaced after any busy or locked error.
 * - the stock client begins transactions with the SDK's `transaction()`, which leaks its
 *   semaphore permit when BEGIN is busy (the client hangs) and swaps in a fresh connection that
 *   has lost every pragma. Here, each new connection gets the pragmas before its first statement.
 *
 * Remote (`libsql://`): each statement is its own request, so a transaction must be the SDK's
 * interactive transaction; `sdkTransaction` wraps one as a connection.
 */
import type * as Reactivity from "@effect/experimental/Reactivity"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import * as Statement from "@effect/sql/Statement"
import * as LibsqlClient from "@effect/sql-libsql/LibsqlClient"
import * as Libsql from "@libsql/client"
import type { Scope } from "effect"
import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import type { OpenTransaction } from "../Backend.js"
import { classify, type DbError } from "../DbError.js"
import * as Session from "./session.js"

type InValue = Libsql.InValue

const attempt = <A>(message: string, run: () => Promise<A>): Effect.Effect<A, SqlError> =>
  Effect.tryPromise({ try: run, catch: (cause) => new SqlError({ cause, message }) })

type Rows = <A extends object>(rows: ReadonlyArray<A>) => ReadonlyArray<A>

/** A connection over anything that executes one statement (an SDK client or transaction). */
const connectionOver = (
  execute: (sql: string, params: ReadonlyArray<unknown>) => Effect.Effect<Libsql.ResultSet, SqlError>
): Connection => {
  const rows = (sql: string, params: ReadonlyArray<unknown>, transformRows: Rows | undefined) =>
    Effect.map(execute(sql, params), (result) => (transformRows ? transformRows(result.rows) : result.rows))
  return {
    execute: rows,
    executeRaw: execute,
    executeUnprepared: rows,
    executeValues: (sql, params) =>
      Effect.map(execute(sql, params), (result) => result.rows.map((row) => Array.from(row))),
    executeStream: (sql, params, transformRows) =>
      Stream.flatMap(Stream.fromEffect(rows(sql, params, transformRows)), Stream.fromIterable)
  }
}

const driverCode = (error: SqlError): string =>
  Predicate.hasProperty(error.cause, "code") && typeof error.cause.code === "string" ? error.cause.code : ""

/**
 * The local connection: an SDK client that is replaced (closed, reopened, pragmas re-applied)
 * after any busy or locked error, because the SDK leaves the failed statement in progress and
 * the connection would silently stop committing. Callers hold the session semaphore, so nothing
 * else runs on the connection while it is replaced.
 */
const localConnection = (options: {
  readonly url: string
  readonly pragmas: ReadonlyArray<string>
}): Effect.Effect<
  { readonly connection: Connection; readonly current: () => Libsql.Client },
  DbError,
  Scope.Scope
> =>
  Effect.gen(function* () {
    const open = Effect.tryPromise({
      try: async () => {
        const sdk = Libsql.createClient({ url: options.url, intMode: "number" })
        try {
          for (const pragma of options.pragmas) await sdk.execute(pragma)
        } catch (cause) {
          sdk.close()
          throw cause
        }
        return sdk
      },
      catch: (cause) => classify(new SqlError({ cause, message: "Failed to open libSQL" }))
    })
    let sdk = yield* open
    yield* Effect.addFinalizer(() => Effect.sync(() => sdk.close()))
    const replace = Effect.flatMap(
      Effect.sync(() => sdk.close()),
      () =>
        Effect.match(open, {
          onSuccess: (fresh) => {
            sdk = fresh
          },
          onFailure: () => undefined
        })
    )
    const execute = (sql: string, params: ReadonlyArray<unknown>) =>
      attempt("Failed to execute statement", () => sdk.execute({ sql, args: params as Array<InValue> })).pipe(
        Effect.tapError((error) => {
          const code = driverCode(error)
          return code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED") ? replace : Effect.void
        })
      )
    return { connection: connectionOver(execute), current: () => sdk }
  })

/**
 * Opens a write transaction with the SDK (`BEGIN IMMEDIATE` on the server), as a session whose
 * `release` closes the SDK transaction whatever happened. Not interruptible (no `restore`): the SDK
 * cannot cancel a BEGIN under way, and a transaction it opened for a caller that had left would
 * never be closed.
 */
export const sdkTransaction =
  (sdk: Libsql.Client): OpenTransaction =>
  () =>
    Effect.map(
      Effect.mapError(
        attempt("Failed to begin transaction", () => sdk.transaction("write")),
        (error) => classify(error)
      ),
      (tx) => ({
        connection: connectionOver((sql, params) =>
          attempt("Failed to execute statement", () => tx.execute({ sql, args: params as Array<InValue> }))
        ),
        commit: attempt("Failed to commit transaction", () => tx.commit()),
        rollback: attempt("Failed to roll back transaction", () => tx.rollback()),
        release: Effect.sync(() => tx.close())
      })
    )

export type Opened =
  /** Local: a session client. */
  | { readonly _tag: "Local"; readonly session: Session.SessionClient }
  /** Remote: the stock client, and the SDK client its transactions go through. */
  | { readonly _tag: "Remote"; readonly client: SqlClient.SqlClient; readonly sdk: Libsql.Client }

/**
 * Opens libSQL. Remote: the stock client over an SDK client (closed with the scope), transactions
 * through `sdkTransaction`. Local: a session client over the self-replacing local connection,
 * every new connection receiving `pragmas` first.
 */
export const make = (options: {
  readonly url: string
  readonly remote: boolean
  readonly authToken: Redacted.Redacted<string> | undefined
  readonly pragmas: ReadonlyArray<string>
}): Effect.Effect<Opened, DbError, Scope.Scope | Reactivity.Reactivity> =>
  Effect.gen(function* () {
    if (!options.remote) {
      const { connection } = yield* localConnection({ url: options.url, pragmas: options.pragmas })
      const session = yield* Session.make({
        connection,
        compiler: Statement.makeCompilerSqlite(),
        system: "sqlite"
      })
      return { _tag: "Local", session } as const
    }
    const sdk = yield* Effect.acquireRelease(
      Effect.try({
        try: () =>
          Libsql.createClient({
            url: options.url,
            intMode: "number",
            ...(options.authToken === undefined ? {} : { authToken: Redacted.value(options.authToken) })
          }),
        catch: (cause) => classify(new SqlError({ cause, message: "Failed to open libSQL" }))
      }),
      (sdk) => Effect.sync(() => sdk.close())
    )
    const client = yield* LibsqlClient.make({ liveClient: sdk })
    return { _tag: "Remote", client, sdk } as const
  })
