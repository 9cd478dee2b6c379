/**
 * Fault injection at the connection: make chosen statements fail with a busy, locked or
 * lost-connection error, either *before* they run (nothing happened) or *after* they ran (the
 * write or COMMIT took effect, but the caller is told it failed) — the fault behind DESIGN.md
 * rule 1's phantom duplicates. `layer` wraps the `SqlClient` and `Backend` already in context.
 */

import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import * as Statement from "@effect/sql/Statement"
import { makeCompiler } from "@effect/sql-pg/PgClient"
import { Backend, type Retry, Transaction } from "@keel/sql"
import { Context, Duration, Effect, Layer } from "effect"

/** The error a fault raises, in the dialect of the backend it is injected into. */
export type FaultError = "busy" | "locked" | "connection"

/** One planned fault. */
export interface Fault {
  /** Which statements it hits (matched against the SQL text). */
  readonly match: RegExp
  /** `before`: the statement does not run. `after`: it runs, then the error is reported. */
  readonly timing: "before" | "after"
  readonly error: FaultError
  /** How many matching statements it hits. Default 1. */
  readonly times?: number
  /**
   * After firing, every later statement on the same connection fails as a lost connection. The
   * real connection's open transaction is rolled back, as a server does when a client vanishes
   * (on a single-session backend the session would otherwise stay inside it).
   */
  readonly breakConnection?: boolean
}

/** Control over the faults of the wrapped client. */
export interface Control {
  readonly inject: (fault: Fault) => Effect.Effect<void>
  /** How many faults have fired so far. */
  readonly fired: Effect.Effect<number>
  /** Every SQL text executed through the wrapped client, in order. */
  readonly statements: Effect.Effect<ReadonlyArray<string>>
  readonly clear: Effect.Effect<void>
}

/** The fault control of the current layer. */
export class Faults extends Context.Tag("@keel/sql/test/Faults")<Faults, Control>() {}

const codes: Record<"sqlite" | "pg", Record<FaultError, readonly [string, string]>> = {
  sqlite: {
    busy: ["SQLITE_BUSY", "database is locked (injected)"],
    locked: ["SQLITE_LOCKED", "database table is locked (injected)"],
    connection: ["ECONNRESET", "connection lost (injected)"]
  },
  pg: {
    busy: ["40001", "could not serialize access due to concurrent update (injected)"],
    locked: ["55P03", "could not obtain lock (injected)"],
    connection: ["ECONNRESET", "Connection terminated unexpectedly (injected)"]
  }
}

/** The driver's own error for a fault: an `Error` carrying the driver's code, as drivers throw. */
const driverCause = (dialect: "sqlite" | "pg", error: FaultError): Error => {
  const [code, message] = codes[dialect][error]
  return Object.assign(new Error(message), { code })
}

/** The driver-shaped error a fault raises: an `SqlError` whose cause carries the driver's code. */
export const driverError = (dialect: "sqlite" | "pg", error: FaultError): SqlError =>
  new SqlError({ cause: driverCause(dialect, error), message: "Failed to execute statement" })

interface Planned extends Fault {
  remaining: number
}

/**
 * Wraps the `SqlClient` and `Backend` in context so faults can be injected into them. Every
 * statement, including BEGIN, COMMIT and ROLLBACK, passes through the fault plan.
 */
export const layer: Layer.Layer<
  SqlClient.SqlClient | Backend.Backend | Faults,
  never,
  SqlClient.SqlClient | Backend.Backend
> = Layer.effectContext(
  Effect.gen(function* () {
    const original = yield* SqlClient.SqlClient
    const backend = yield* Backend.Backend
    // Plain state, not Refs: the synchronous driver consults the plan without running an effect.
    let plan: ReadonlyArray<Planned> = []
    let fired = 0
    let log: Array<string> = []

    /** Logs a statement and returns the planned fault that hits it, if any (counting it as fired). */
    const hit = (sql: string): Planned | undefined => {
      log.push(sql)
      const fault = plan.find((planned) => planned.remaining > 0 && planned.match.test(sql))
      if (fault !== undefined) {
        fault.remaining--
        fired++
      }
      return fault
    }

    const wrap = (connection: Connection): Connection => {
      let broken = false
      const guard =
        <Args extends ReadonlyArray<unknown>, A>(
          run: (sql: string, ...args: Args) => Effect.Effect<A, SqlError>
        ) =>
        (sql: string, ...args: Args): Effect.Effect<A, SqlError> =>
          Effect.suspend(() => {
            if (broken) {
              log.push(sql)
              return Effect.fail(driverError(backend.dialect, "connection"))
            }
            const fault = hit(sql)
            if (fault === undefined) return run(sql, ...args)
            const failure = Effect.fail(driverError(backend.dialect, fault.error))
            const after = Effect.suspend(() => {
              if (fault.breakConnection !== true) return failure
              broken = true
              return Effect.zipRight(
                Effect.ignore(connection.executeUnprepared("ROLLBACK", [], undefined)),
                failure
              )
            })
            return fault.timing === "after" ? Effect.zipRight(run(sql, ...args), after) : after
          })
      return {
        // Driver connections are classes whose methods use `this`: call them as methods.
        execute: guard((sql, params: ReadonlyArray<unknown>, transform) =>
          connection.execute(sql, params, transform)
        ),
        executeRaw: guard((sql, params: ReadonlyArray<unknown>) => connection.executeRaw(sql, params)),
        executeValues: guard((sql, params: ReadonlyArray<unknown>) => connection.executeValues(sql, params)),
        executeUnprepared: guard((sql, params: ReadonlyArray<unknown>, transform) =>
          connection.executeUnprepared(sql, params, transform)
        ),
        executeStream: (sql, params, transform) => connection.executeStream(sql, params, transform)
      }
    }

    /**
     * The same plan on the synchronous driver (`Transaction.single` on SQLite): a fault throws the
     * driver's error before or after running the statement; a broken session fails every later
     * statement of the same use, after rolling the real transaction back.
     */
    const wrapDriver = (driver: Backend.SyncDriver): Backend.SyncDriver => {
      let broken = false
      const through = <A>(sql: string, run: () => A): A => {
        if (broken) {
          log.push(sql)
          throw driverCause(backend.dialect, "connection")
        }
        const fault = hit(sql)
        if (fault === undefined) return run()
        if (fault.timing === "after") run()
        if (fault.breakConnection === true) {
          broken = true
          if (driver.inTransaction()) driver.run("ROLLBACK", [])
        }
        throw driverCause(backend.dialect, fault.error)
      }
      return {
        inTransaction: () => driver.inTransaction(),
        run: (sql, params) => through(sql, () => driver.run(sql, params)),
        count: (sql, params) => through(sql, () => driver.count(sql, params))
      }
    }
    const withDriver = backend.withDriver
    const faultyDriver: Backend.WithDriver | undefined =
      withDriver === undefined ? undefined : (use) => withDriver((driver) => use(wrapDriver(driver)))
    const driverNow = backend.driverNow
    const faultyDriverNow: Backend.DriverNow | undefined =
      driverNow === undefined ? undefined : (use) => driverNow((driver) => use(wrapDriver(driver)))

    const acquirer = Effect.map(original.reserve, wrap)
    const client = yield* Effect.provide(
      SqlClient.make({
        acquirer,
        transactionAcquirer: acquirer,
        compiler: backend.dialect === "pg" ? makeCompiler() : Statement.makeCompilerSqlite(),
        spanAttributes: []
      }),
      Reactivity.layer
    )
    const wrappedBackend = Backend.make({
      kind: backend.kind,
      client,
      dsn: backend.dsn,
      singleSession: backend.singleSession,
      withDriver: faultyDriver,
      driverNow: faultyDriverNow,
      notifications: backend.notifications
    })
    const withTransaction = Transaction.withTransactionFor(wrappedBackend)
    const control: Control = {
      inject: (fault) =>
        Effect.sync(() => {
          plan = [...plan, { ...fault, remaining: fault.times ?? 1 }]
        }),
      fired: Effect.sync(() => fired),
      statements: Effect.sync(() => [...log]),
      clear: Effect.sync(() => {
        plan = []
        log = []
        fired = 0
      })
    }
    return Context.make(SqlClient.SqlClient, Object.assign(client, { withTransaction })).pipe(
      Context.add(Backend.Backend, wrappedBackend),
      Context.add(Faults, control)
    )
  })
)

/**
 * A fast retry policy for fault tests (1 ms doubling, each delay ≤ 5 ms, ≤ 10 retries, ≤ 5 s):
 * what such tests check is which failures are retried, not how long the retries wait.
 */
export const quickRetry: Retry.PolicyOptions = {
  base: Duration.millis(1),
  factor: 2,
  maxDelay: Duration.millis(5),
  maxRetries: 10,
  maxElapsed: Duration.seconds(5)
}
