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
import { Effect, type Scope, Stream } from "effect"

export interface SessionOptions {
  readonly connection: Connection
  readonly compiler: Compiler
  readonly system: string
}

/** A session client, and the exclusive session for transactions without a scope (the hot path). */
export interface SessionClient {
  readonly client: Client.SqlClient
  /** Waits (interruptibly) for the session and yields the connection itself; `release` gives it back. */
  readonly acquire: Effect.Effect<Connection>
  readonly release: Effect.Effect<void>
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
    const inner = options.connection
    const exclusively = semaphore.withPermits(1)
    const guarded: Connection = {
      execute: (sql, params, transformRows) => exclusively(inner.execute(sql, params, transformRows)),
      executeRaw: (sql, params) => exclusively(inner.executeRaw(sql, params)),
      executeValues: (sql, params) => exclusively(inner.executeValues(sql, params)),
      executeUnprepared: (sql, params, transformRows) =>
        exclusively(inner.executeUnprepared(sql, params, transformRows)),
      executeStream: (sql, params, transformRows) =>
        Stream.unwrapScoped(
          Effect.as(
            Effect.acquireRelease(semaphore.take(1), () => semaphore.release(1)),
            inner.executeStream(sql, params, transformRows)
          )
        )
    }
    const reserve: Effect.Effect<Connection, never, Scope.Scope> = Effect.uninterruptibleMask((restore) =>
      Effect.zipRight(
        restore(semaphore.take(1)),
        Effect.as(
          Effect.addFinalizer(() => semaphore.release(1)),
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
    return {
      client,
      acquire: Effect.as(semaphore.take(1), inner),
      release: Effect.asVoid(semaphore.release(1))
    }
  })
