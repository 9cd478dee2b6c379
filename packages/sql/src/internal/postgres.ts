/**
 * PostgreSQL through `@effect/sql-pg` (node-postgres). A pool of sessions; `reserve` takes one
 * connection for a transaction's lifetime. BIGINT columns are parsed as numbers (identifiers and
 * counters stay far below 2^53) so rows decode the same on PostgreSQL, PGlite and SQLite.
 */
import type * as Reactivity from "@effect/experimental/Reactivity"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import pg from "pg"
import type { Notifications } from "../Backend.js"
import { classify, type DbError } from "../DbError.js"
import { prepareRepeated } from "./prepared.js"

const INT8 = 20

const parseInt8 = (value: string): number | string => {
  const parsed = Number(value)
  return Number.isSafeInteger(parsed) ? parsed : value
}

const types = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === INT8 && format !== "binary"
      ? parseInt8
      : pg.types.getTypeParser(oid, format ?? "text")) as typeof pg.types.getTypeParser
}

/**
 * Connects a pool (verified with `SELECT 1` within 10 s); the scope ends it. With `prepare`, every
 * connection names the statements it runs repeatedly (`prepared.ts`). The pool is built here, as
 * `PgClient.make` builds its own, so that its connections can be set up: `PgClient.fromPool`.
 */
export const make = (options: {
  readonly url: Redacted.Redacted<string>
  readonly maxConnections: number
  readonly prepare: boolean
}): Effect.Effect<PgClient.PgClient, DbError, Scope.Scope | Reactivity.Reactivity> => {
  const connectTimeout = Duration.seconds(10)
  const acquire = Effect.suspend(() => {
    const pool = new pg.Pool({
      connectionString: Redacted.value(options.url),
      connectionTimeoutMillis: Duration.toMillis(connectTimeout),
      max: options.maxConnections,
      application_name: "keel",
      types
    })
    // An idle client that fails (the server closed it) is dropped by the pool; unheard, the error
    // would end the process. A client in use reports its error to its statement.
    pool.on("error", () => undefined)
    if (options.prepare) pool.on("connect", prepareRepeated)
    return Effect.acquireRelease(
      Effect.as(
        Effect.tryPromise({
          try: () => pool.query("SELECT 1"),
          catch: (cause) => new SqlError({ cause, message: "PgClient: Failed to connect" })
        }),
        pool
      ),
      () => Effect.promise(() => pool.end()).pipe(Effect.interruptible, Effect.timeoutOption(1000))
    ).pipe(
      Effect.timeoutFail({
        duration: connectTimeout,
        onTimeout: () =>
          new SqlError({
            cause: new Error("Connection timed out"),
            message: "PgClient: Connection timed out"
          })
      })
    )
  })
  return Effect.mapError(PgClient.fromPool({ acquire, types, applicationName: "keel" }), (error) =>
    classify(error)
  )
}

/**
 * LISTEN/NOTIFY through the client's dedicated listening connection. Notifying goes through
 * `pg_notify($1, $2)`: the stock `notify` sends `NOTIFY "channel", $1`, which PostgreSQL rejects
 * (NOTIFY takes no bind parameters). Inside a transaction the notification is delivered at COMMIT.
 */
export const notifications = (client: PgClient.PgClient): Notifications => ({
  listening: () => true,
  notify: (channel, payload) =>
    Effect.asVoid(
      Effect.mapError(client`SELECT pg_notify(${channel}, ${payload})`, (error) => classify(error))
    ),
  listen: (channel) => Stream.mapError(client.listen(channel), (error) => classify(error))
})

/**
 * The client's `reserve`, made safe to interrupt while it waits. The stock one is an
 * `Effect.async` over `pool.connect` with no canceller: a waiter interrupted by a timeout never
 * releases the connection the pool hands over later, and the pool slowly runs dry. Here the
 * wait happens in a daemon fiber; if the caller is interrupted, the daemon still receives the
 * connection and returns it to the pool.
 */
export const interruptibleReserve = (
  reserve: Effect.Effect<Connection, SqlError, Scope.Scope>
): Effect.Effect<Connection, SqlError, Scope.Scope> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function* () {
      const inner = yield* Scope.make()
      const waiter = yield* Effect.forkDaemon(Scope.extend(reserve, inner))
      const exit = yield* restore(Fiber.await(waiter)).pipe(
        Effect.onInterrupt(() =>
          Effect.forkDaemon(Effect.zipRight(Fiber.await(waiter), Scope.close(inner, Exit.void)))
        )
      )
      if (Exit.isFailure(exit)) {
        yield* Scope.close(inner, exit)
        return yield* exit
      }
      yield* Effect.addFinalizer((outcome) => Scope.close(inner, outcome))
      return exit.value
    })
  )
