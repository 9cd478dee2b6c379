/**
 * A SqlClient over one database session (better-sqlite3, local libSQL, PGlite).
 *
 * One semaphore guards the session. A plain statement holds the permit while it runs; a
 * transaction (`reserve`) holds it from BEGIN to COMMIT/ROLLBACK. So two transactions never
 * interleave, and a plain statement of another fiber can never land inside someone else's
 * transaction — which the stock sqlite-node client allows, because its acquirer releases the
 * permit before the statement runs, and the stock libSQL client's `reserve` holds none at all.
 */
import type * as Reactivity from "@effect/experimental/Reactivity"
import * as Client from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import type { Compiler } from "@effect/sql/Statement"
import type { Scope } from "effect"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type { DriverNow, SyncDriver, WithDriver } from "../Backend.js"

export interface SessionOptions {
  readonly connection: Connection
  readonly compiler: Compiler
  readonly system: string
  /** The same session driven synchronously, when the driver allows it. */
  readonly driver?: SyncDriver
}

/** A session client, and the exclusive session for transactions without a scope (the hot path). */
export interface SessionClient {
  readonly client: Client.SqlClient
  /** Waits (interruptibly) for the session and yields the connection itself; `release` gives it back. */
  readonly acquire: Effect.Effect<Connection>
  readonly release: Effect.Effect<void>
  /** Synchronous use of the session, when `SessionOptions.driver` is given (see `Backend.WithDriver`). */
  readonly withDriver: WithDriver | undefined
  /** Synchronous use of the session only if it is free at once (see `Backend.DriverNow`). */
  readonly driverNow: DriverNow | undefined
}

/**
 * Builds the client. A plain statement runs through a guarded view of the connection whose every
 * call holds the permit for exactly that call (no scope, no finalizer: this is the hot path);
 * `reserve` holds the permit for the caller's scope and yields the connection itself, which is
 * what a transaction uses from BEGIN to COMMIT/ROLLBACK.
 */
export const make = (options: SessionOptions): Effect.Effect<SessionClient, never, Reactivity.Reactivity> =>
  Effect.gen(function* () {
    const semaphore = yield* Effect.makeSemaphore(1)
    // Who holds the session, counted beside the semaphore (which does not expose it): a
    // synchronous use may run at once, without taking a permit, exactly when this is zero.
    let holders = 0
    const take = Effect.map(semaphore.take(1), () => {
      holders++
    })
    const give = Effect.suspend(() => {
      holders--
      return semaphore.release(1)
    })
    const exclusively = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.zipRight(restore(take), Effect.ensuring(restore(effect), give))
      )
    const inner = options.connection
    const guarded: Connection = {
      execute: (sql, params, transformRows) => exclusively(inner.execute(sql, params, transformRows)),
      executeRaw: (sql, params) => exclusively(inner.executeRaw(sql, params)),
      executeValues: (sql, params) => exclusively(inner.executeValues(sql, params)),
      executeUnprepared: (sql, params, transformRows) =>
        exclusively(inner.executeUnprepared(sql, params, transformRows)),
      executeStream: (sql, params, transformRows) =>
        Stream.unwrapScoped(
          Effect.as(
            Effect.acquireRelease(take, () => give),
            inner.executeStream(sql, params, transformRows)
          )
        )
    }
    const reserve: Effect.Effect<Connection, never, Scope.Scope> = Effect.uninterruptibleMask((restore) =>
      Effect.zipRight(
        restore(take),
        Effect.as(
          Effect.addFinalizer(() => give),
          inner
        )
      )
    )
    const client = yield* Client.make({
      acquirer: Effect.succeed(guarded),
      transactionAcquirer: reserve,
      compiler: options.compiler,
      spanAttributes: [["db.system.name", options.system]]
    })
    const driver = options.driver
    const withDriver: WithDriver | undefined =
      driver === undefined
        ? undefined
        : (use) =>
            // The check and the use happen in one synchronous step: nobody can take the session
            // in between, and `use` gives it back before anyone else runs.
            Effect.suspend(() =>
              holders === 0 ? Effect.succeed(use(driver)) : exclusively(Effect.sync(() => use(driver)))
            )
    const driverNow: DriverNow | undefined =
      driver === undefined ? undefined : (use) => (holders === 0 ? Option.some(use(driver)) : Option.none())
    return {
      client,
      acquire: Effect.as(take, inner),
      release: Effect.asVoid(give),
      withDriver,
      driverNow
    }
  })
