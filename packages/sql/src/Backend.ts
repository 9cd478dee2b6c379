/**
 * The backend a SqlClient talks to: which kind, its dialect, whether it has one session, its
 * parameter limit, and the primitive that opens a write transaction on it. Every Keel layer that
 * provides `SqlClient` provides `Backend` beside it (see `Database.layer`).
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import type { SqlError } from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { classify, type DbError } from "./DbError.js"

/** The backends Keel runs on (`turso` is the Turso engine, `@tursodatabase/database`). */
export type Kind = "sqlite" | "postgres" | "libsql" | "pglite" | "turso"

/** An open write transaction: its connection, how to end it, and how to give the connection back. */
export interface Session {
  /** The connection every statement of the transaction runs on. */
  readonly connection: Connection
  /** Issues COMMIT; succeeds with the driver's raw result (pg reports `command: "ROLLBACK"` for an aborted one). */
  readonly commit: Effect.Effect<unknown, SqlError>
  /** Issues ROLLBACK. */
  readonly rollback: Effect.Effect<void, SqlError>
  /** Gives the connection back (to the session semaphore or the pool). Called once, after COMMIT/ROLLBACK. */
  readonly release: Effect.Effect<void>
}

/** A single session's driver, driven synchronously (better-sqlite3): nothing yields between calls. */
export interface SyncDriver {
  /** Runs a statement and returns its rows (none for a statement without). Throws the driver's error. */
  readonly run: (sql: string, params: ReadonlyArray<unknown>) => ReadonlyArray<unknown>
  /**
   * Runs a statement without RETURNING and returns how many rows it changed (SQLite's `changes()`:
   * an upsert whose conflict WHERE was false changed none). Throws the driver's error.
   */
  readonly count: (sql: string, params: ReadonlyArray<unknown>) => number
  /** True while the session is inside a transaction (SQLite ends one itself after some errors). */
  readonly inTransaction: () => boolean
}

/**
 * Runs `use` on the synchronous driver while nobody else holds the session: at once when it is
 * free, after waiting (interruptibly) otherwise. `use` runs to completion in one synchronous step,
 * so no other statement or transaction can interleave with it.
 */
export type WithDriver = <A>(use: (driver: SyncDriver) => A) => Effect.Effect<A>

/**
 * Runs `use` on the synchronous driver at once, in the caller's synchronous step, when nobody holds
 * the session (no transaction open, no statement running); `None` otherwise, and `use` is not run.
 */
export type DriverNow = <A>(use: (driver: SyncDriver) => A) => Option.Option<A>

/** `Effect.uninterruptibleMask`'s `restore`: runs an effect as interruptible as the caller was. */
export type Restore = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

/**
 * Opens a write transaction. It runs inside its caller's uninterruptible region, and only the wait
 * for the connection runs under that region's `restore`: an interruption either ends the wait with
 * nothing held or waits until the session is in the caller's hands. Run under `restore` as a whole,
 * an interruption that arrives during BEGIN would be delivered as BEGIN's own uninterruptible step
 * ends, dropping the open session: its connection (the one session of PGlite or local libSQL, a
 * pool connection on PostgreSQL) never given back, its transaction never ended.
 */
export type OpenTransaction = (restore: Restore) => Effect.Effect<Session, DbError>

/** The backend behind the SqlClient in the same context. */
export interface Backend {
  readonly kind: Kind
  /** The SQL dialect statements are compiled for; libSQL and Turso compile as `sqlite`, PGlite as `pg`. */
  readonly dialect: "sqlite" | "pg"
  /** True when the database has one session: a transaction excludes every other statement. */
  readonly singleSession: boolean
  /** The most bind parameters one statement may carry. */
  readonly parameterLimit: number
  /** The DSN with its secrets redacted, for logs and errors. */
  readonly dsn: string
  /**
   * Opens a write transaction: takes an exclusive connection and issues BEGIN while acquiring it
   * (BEGIN IMMEDIATE on SQLite and libSQL), so a busy BEGIN fails here, typed, and gives the
   * connection back. Only the wait for the connection may be interrupted; then nothing is held.
   * Ending the transaction and calling `release` are the caller's job.
   */
  readonly openTransaction: OpenTransaction
  /**
   * Synchronous access to the session, where the driver allows it (better-sqlite3 only):
   * `Transaction.single` runs BEGIN, one statement and COMMIT through it in one step, without the
   * per-statement cost of the `Connection` path.
   */
  readonly withDriver: WithDriver | undefined
  /** `withDriver` without waiting, for a caller that has another way when the session is busy. */
  readonly driverNow: DriverNow | undefined
  /** Wake-ups between producers and consumers: LISTEN/NOTIFY on PostgreSQL, in-process elsewhere. */
  readonly notifications: Notifications
}

/** A best-effort signal channel. A lost signal costs latency, never correctness: pollers remain. */
export interface Notifications {
  readonly notify: (channel: string, payload: string) => Effect.Effect<void, DbError>
  /**
   * False when a signal on `channel` would reach nobody (in-process: no listener in this process),
   * so a sender can skip building it. Always true where listeners may be elsewhere (PostgreSQL).
   */
  readonly listening: (channel: string) => boolean
  readonly listen: (channel: string) => Stream.Stream<string, DbError>
  /**
   * `notify` in the caller's synchronous step, where a signal needs no I/O (in-process); absent
   * where it does (PostgreSQL's NOTIFY is a statement).
   */
  readonly notifyNow?: ((channel: string, payload: string) => void) | undefined
}

/** The `Backend` service tag. */
export const Backend = Context.GenericTag<Backend>("@keel/sql/Backend")

/** SQLite's, libSQL's and (kept the same, though it accepts more) Turso's bind parameter limit (SQLITE_MAX_VARIABLE_NUMBER). */
export const sqliteParameterLimit = 32766
/** PostgreSQL's and PGlite's bind parameter limit (an Int16 count in the wire protocol). */
export const postgresParameterLimit = 65535

const properties: Record<Kind, { readonly dialect: "sqlite" | "pg"; readonly parameterLimit: number }> = {
  sqlite: { dialect: "sqlite", parameterLimit: sqliteParameterLimit },
  libsql: { dialect: "sqlite", parameterLimit: sqliteParameterLimit },
  turso: { dialect: "sqlite", parameterLimit: sqliteParameterLimit },
  postgres: { dialect: "pg", parameterLimit: postgresParameterLimit },
  pglite: { dialect: "pg", parameterLimit: postgresParameterLimit }
}

const beginStatement = (dialect: "sqlite" | "pg") => (dialect === "sqlite" ? "BEGIN IMMEDIATE" : "BEGIN")

/**
 * Opens a transaction on the connection `acquire` yields exclusively and `release` gives back:
 * BEGIN (IMMEDIATE on the SQLite dialect, so the write lock is taken up front) runs right after
 * the connection is acquired; if it fails the connection is given back and the error is typed.
 * Only the wait in `acquire` runs under `restore` (see `OpenTransaction`): `acquire` must hold
 * nothing when it is interrupted. BEGIN/COMMIT/ROLLBACK go through the prepared-statement path.
 */
export const acquireAndBegin =
  (
    acquire: Effect.Effect<Connection, SqlError>,
    release: Effect.Effect<void>,
    dialect: "sqlite" | "pg"
  ): OpenTransaction =>
  (restore) =>
    Effect.flatMap(
      Effect.mapError(restore(acquire), (error) => classify(error)),
      (connection) =>
        connection.execute(beginStatement(dialect), [], undefined).pipe(
          Effect.mapError((error) => classify(error)),
          Effect.onError(() => release),
          Effect.as({
            connection,
            commit: connection.executeRaw("COMMIT", []),
            rollback: Effect.asVoid(connection.execute("ROLLBACK", [], undefined)),
            release
          })
        )
    )

/**
 * `acquireAndBegin` over a scoped `reserve` (a pool connection, or a connection the fault injector
 * wraps): the reservation lives in a scope of its own that `release` closes, and that an
 * interrupted or failed wait closes at once.
 */
export const reserveAndBegin =
  (reserve: Effect.Effect<Connection, SqlError, Scope.Scope>, dialect: "sqlite" | "pg"): OpenTransaction =>
  (restore) =>
    Effect.flatMap(Scope.make(), (scope) =>
      acquireAndBegin(
        Effect.onError(Scope.extend(reserve, scope), (cause) => Scope.close(scope, Exit.failCause(cause))),
        Scope.close(scope, Exit.void),
        dialect
      )(restore)
    )

/**
 * In-process notifications, for backends where every producer and consumer share one process. A
 * channel nobody listens to costs nothing to notify: with no subscriber a signal would be dropped
 * anyway, so it is not published at all.
 */
export const localNotifications: Effect.Effect<Notifications> = Effect.map(
  PubSub.unbounded<readonly [string, string]>(),
  (hub) => {
    const listeners = new Map<string, number>()
    const count = (channel: string, delta: number) =>
      Effect.sync(() => {
        const next = (listeners.get(channel) ?? 0) + delta
        if (next === 0) listeners.delete(channel)
        else listeners.set(channel, next)
      })
    return {
      listening: (channel) => listeners.has(channel),
      notify: (channel, payload) =>
        Effect.suspend(() =>
          listeners.has(channel)
            ? Effect.asVoid(PubSub.publish(hub, [channel, payload] as const))
            : Effect.void
        ),
      // An unbounded hub takes every signal at once: offering is publishing.
      notifyNow: (channel, payload) => {
        if (listeners.has(channel)) hub.unsafeOffer([channel, payload] as const)
      },
      listen: (channel) =>
        Stream.unwrapScoped(
          Effect.as(
            // Counted before subscribing: a signal sent in between is published, never skipped.
            Effect.acquireRelease(count(channel, 1), () => count(channel, -1)),
            Stream.fromPubSub(hub).pipe(
              Stream.filterMap(([name, payload]) => (name === channel ? Option.some(payload) : Option.none()))
            )
          )
        )
    }
  }
)

/**
 * Builds a `Backend` for `client`. `openTransaction` defaults to `reserveAndBegin` over the
 * client's `reserve`, which is right whenever that yields an exclusive connection for the scope.
 */
export const make = (options: {
  readonly kind: Kind
  readonly client: SqlClient.SqlClient
  readonly dsn: string
  readonly singleSession: boolean
  readonly openTransaction?: OpenTransaction
  readonly withDriver?: WithDriver | undefined
  readonly driverNow?: DriverNow | undefined
  readonly notifications: Notifications
}): Backend => {
  const { dialect, parameterLimit } = properties[options.kind]
  return {
    kind: options.kind,
    dialect,
    singleSession: options.singleSession,
    parameterLimit,
    dsn: options.dsn,
    openTransaction: options.openTransaction ?? reserveAndBegin(options.client.reserve, dialect),
    withDriver: options.withDriver,
    driverNow: options.driverNow,
    notifications: options.notifications
  }
}
