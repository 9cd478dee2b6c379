/**
 * Transactions as scoped resources that span plan and execute (DESIGN.md rules 2 and 3).
 *
 * `immediate` is the one place Keel begins, commits and rolls back. Acquire = an exclusive
 * connection with BEGIN (IMMEDIATE on SQLite/libSQL) issued while acquiring it; release = COMMIT
 * on success, ROLLBACK on failure or interruption, always. Nested use becomes a savepoint. A
 * failed COMMIT is rolled back and typed — never a defect, never a connection left inside a dead
 * transaction. It replaces `SqlClient.withTransaction`, which turns a failed COMMIT into a defect,
 * cannot ask for BEGIN IMMEDIATE, and cannot be interrupted while it waits for a connection.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import { Cause, Context, Effect, Exit, identity, Option, Predicate, Schema } from "effect"
import { Backend, type Session, type SyncDriver } from "./Backend.js"
import { classify, DbError, type DbError as DbErrorType, refine } from "./DbError.js"

/** The transaction the current fiber runs in: its backend, connection and savepoint depth. */
export interface ActiveTransaction {
  readonly backend: Backend
  readonly connection: Connection
  readonly depth: number
}

/**
 * Present in the context exactly while an effect runs inside a Keel transaction. Effects that only
 * make sense inside one (`lock`) require it, so calling them outside a transaction does not compile.
 */
export class Active extends Context.Tag("@keel/sql/Transaction/Active")<Active, ActiveTransaction>() {}

/** COMMIT failed and the transaction is known to have rolled back: nothing it wrote persists. */
export class CommitRejected extends Schema.TaggedError<CommitRejected>()("CommitRejected", {
  reason: DbError
}) {
  override get message(): string {
    return `COMMIT was rejected and the transaction rolled back: ${this.reason.message}`
  }
}

/**
 * PostgreSQL reported COMMIT as `ROLLBACK`: a statement inside failed, the failure was caught, and
 * the aborted transaction was committed. Nothing it wrote persists.
 */
export class TransactionAborted extends Schema.TaggedError<TransactionAborted>()("TransactionAborted", {}) {
  override get message(): string {
    return "the transaction was aborted by an earlier failed statement; COMMIT rolled it back"
  }
}

/**
 * COMMIT did not report success and the database cannot say whether it took effect (the
 * connection was lost, or a reported error came after the commit). Retrying is safe only for
 * work guarded by an idempotency key.
 */
export class CommitOutcomeUnknown extends Schema.TaggedError<CommitOutcomeUnknown>()("CommitOutcomeUnknown", {
  reason: DbError
}) {
  override get message(): string {
    return `the outcome of COMMIT is unknown: ${this.reason.message}`
  }
}

/**
 * An independent transaction was asked for while the current fiber holds the only session of a
 * single-session backend (SQLite, local libSQL, PGlite). Waiting would deadlock; this fails at once.
 */
export class SessionInUse extends Schema.TaggedError<SessionInUse>()("SessionInUse", {
  backend: Schema.String
}) {
  override get message(): string {
    return `${this.backend} has a single session and this fiber's transaction holds it; an independent transaction would wait forever`
  }
}

/** The errors a transaction adds to those of its body. */
export type TransactionError = DbErrorType | CommitRejected | TransactionAborted | CommitOutcomeUnknown

/** True when the transaction failed in a way that proves it rolled back (safe to re-run whole). */
export const isRolledBack = (u: unknown): u is CommitRejected | TransactionAborted =>
  Predicate.isTagged(u, "CommitRejected") || Predicate.isTagged(u, "TransactionAborted")

const commandOf = (raw: unknown): string | undefined =>
  Predicate.hasProperty(raw, "command") && typeof raw.command === "string" ? raw.command : undefined

/** SQLite's answer to ROLLBACK when the transaction already ended. */
const noActiveTransaction = (error: unknown): boolean =>
  /no transaction is active/i.test(classify(error).message)

/**
 * Ends a transaction whose body succeeded. A rejected COMMIT is followed by ROLLBACK: on SQLite a
 * failed COMMIT (busy, deferred foreign key) leaves the transaction open, and a later plain write
 * would silently join it. If that ROLLBACK succeeds the transaction provably rolled back; if the
 * session has no transaction any more, the COMMIT may or may not have taken effect.
 */
const commit = (session: Session): Effect.Effect<void, TransactionError> =>
  Effect.matchCauseEffect(session.commit, {
    onSuccess: (raw) => (commandOf(raw) === "ROLLBACK" ? Effect.fail(new TransactionAborted()) : Effect.void),
    onFailure: (cause) => {
      const reason = classify(Cause.squash(cause))
      return Effect.matchCauseEffect(session.rollback, {
        onSuccess: () => Effect.fail(new CommitRejected({ reason })),
        onFailure: () => Effect.fail(new CommitOutcomeUnknown({ reason }))
      })
    }
  })

/** What a transaction provides to its body: the transaction and its connection. */
export type Provided = Active | SqlClient.TransactionConnection

/**
 * Runs `body` with `active` as its transaction: statements of the body (the caller's own `sql`
 * statements included) run on its connection. One context merge, not two `provideService`s:
 * providing services is one of the costlier steps of a transaction.
 */
const within = <A, E, R>(
  body: Effect.Effect<A, E, R>,
  active: ActiveTransaction
): Effect.Effect<A, E, Exclude<R, Provided>> =>
  Effect.provide(
    body,
    Context.make(Active, active).pipe(
      Context.add(SqlClient.TransactionConnection, [active.connection, active.depth] as const)
    )
  )

/** What is logged when a transaction could not be rolled back (the connection is released anyway). */
const rollbackFailedWarning = "ROLLBACK failed twice; the connection is released"

/**
 * Ends a transaction whose body failed or was interrupted. A ROLLBACK that finds no transaction
 * (SQLite ended it itself) is the outcome we wanted. Any other failure is tried once more — on a
 * single-session backend a session left inside the transaction would refuse every later BEGIN —
 * and then logged, redacted.
 */
const rollback = (session: Session): Effect.Effect<void> => {
  const attempt = Effect.catchAll(session.rollback, (error) =>
    noActiveTransaction(error) ? Effect.void : Effect.fail(classify(error))
  )
  return Effect.catchAll(
    Effect.orElse(attempt, () => attempt),
    (error) => Effect.logWarning(rollbackFailedWarning, error.message)
  )
}

const runTopLevel = <A, E, R, E2>(
  backend: Backend,
  body: Effect.Effect<A, E, R>,
  onError: (error: TransactionError) => E2
): Effect.Effect<A, E | E2, Exclude<R, Provided>> =>
  Effect.uninterruptibleMask((restore) =>
    // Waiting for the session stays interruptible (a timeout on it fires on time); from the moment
    // it is acquired, the session is always ended and released, whatever happens to the body.
    Effect.flatMap(Effect.mapError(restore(backend.openTransaction), onError), (session) =>
      Effect.gen(function* () {
        const exit = yield* Effect.exit(
          within(restore(body), { backend, connection: session.connection, depth: 0 })
        )
        if (Exit.isFailure(exit)) {
          yield* rollback(session)
          return yield* exit
        }
        yield* Effect.mapError(commit(session), onError)
        return exit.value
      }).pipe(Effect.ensuring(session.release))
    )
  )

const runSavepoint = <A, E, R, E2>(
  outer: ActiveTransaction,
  body: Effect.Effect<A, E, R>,
  onError: (error: TransactionError) => E2
): Effect.Effect<A, E | E2, Exclude<R, Provided>> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function* () {
      const depth = outer.depth + 1
      const name = `keel_savepoint_${depth}`
      const run = (statement: string) =>
        Effect.mapError(outer.connection.executeUnprepared(statement, [], undefined), (error) =>
          onError(classify(error))
        )
      yield* run(`SAVEPOINT ${name}`)
      const exit = yield* Effect.exit(within(restore(body), { ...outer, depth }))
      if (Exit.isSuccess(exit)) {
        yield* run(`RELEASE SAVEPOINT ${name}`)
        return exit.value
      }
      yield* Effect.ignore(run(`ROLLBACK TO SAVEPOINT ${name}`))
      yield* Effect.ignore(run(`RELEASE SAVEPOINT ${name}`))
      return yield* exit
    })
  )

const currentOn = (backend: Backend) =>
  Effect.map(
    Effect.serviceOption(Active),
    Option.filter((active) => active.backend === backend)
  )

/**
 * Runs `body` in a write transaction on the current backend. On SQLite and libSQL the write lock
 * is taken at BEGIN (`BEGIN IMMEDIATE`), so a read-decide-write body cannot be overtaken; on
 * PostgreSQL and PGlite pair it with `FOR UPDATE [SKIP LOCKED]` or `lock`. Inside another Keel
 * transaction on the same backend it becomes a savepoint. Statements of the body — including the
 * caller's own `sql` statements — run on the transaction's connection.
 */
export const immediate = <A, E, R>(
  body: Effect.Effect<A, E, R>
): Effect.Effect<A, E | TransactionError, Exclude<R, Provided> | Backend> =>
  Effect.flatMap(Backend, (backend) =>
    Effect.flatMap(currentOn(backend), (active) =>
      Option.isSome(active)
        ? runSavepoint(active.value, body, identity)
        : runTopLevel(backend, body, identity)
    )
  )

/**
 * ROLLBACK on the synchronous driver after a failure, tried twice like `rollback`. True when the
 * session is then outside any transaction (SQLite may already have ended it itself).
 */
const driverRollback = (driver: SyncDriver): boolean => {
  for (let attempt = 0; attempt < 2 && driver.inTransaction(); attempt++) {
    try {
      driver.run("ROLLBACK", [])
    } catch {
      // Tried once more; a session left inside the transaction is reported by the caller.
    }
  }
  return !driver.inTransaction()
}

/** How a one-statement transaction on the synchronous driver ended. */
type DriverOutcome =
  | { readonly _tag: "Committed"; readonly rows: ReadonlyArray<unknown> }
  | { readonly _tag: "Failed"; readonly error: TransactionError; readonly rollbackFailed: boolean }

/**
 * BEGIN IMMEDIATE, one statement, COMMIT, in one synchronous step — `runTopLevel` for a body of one
 * statement, with the same outcomes: a failed BEGIN ran nothing; a failed statement is rolled back
 * and is the error; a failed COMMIT is followed by ROLLBACK and is `CommitRejected` when that proves
 * the rollback, `CommitOutcomeUnknown` when SQLite already ended the transaction itself.
 */
const writeOne = (driver: SyncDriver, sql: string, params: ReadonlyArray<unknown>): DriverOutcome => {
  try {
    driver.run("BEGIN IMMEDIATE", [])
  } catch (cause) {
    return { _tag: "Failed", error: classify(cause), rollbackFailed: false }
  }
  let rows: ReadonlyArray<unknown>
  try {
    rows = driver.run(sql, params)
  } catch (cause) {
    return { _tag: "Failed", error: classify(cause), rollbackFailed: !driverRollback(driver) }
  }
  try {
    driver.run("COMMIT", [])
  } catch (cause) {
    const reason = classify(cause)
    const error =
      driver.inTransaction() && driverRollback(driver)
        ? new CommitRejected({ reason })
        : new CommitOutcomeUnknown({ reason })
    return { _tag: "Failed", error, rollbackFailed: false }
  }
  return { _tag: "Committed", rows }
}

/**
 * `single` on a given backend: for services that hold their `Backend` (it saves providing one per
 * call, which costs more than the statement on SQLite).
 */
export const singleOn =
  (backend: Backend) =>
  <A extends object>(statement: Statement.Statement<A>): Effect.Effect<ReadonlyArray<A>, TransactionError> =>
    Effect.flatMap(currentOn(backend), (active) => {
      if (Option.isSome(active)) return runSavepoint(active.value, refine(statement), identity)
      const withDriver = backend.withDriver
      if (withDriver === undefined) return runTopLevel(backend, refine(statement), identity)
      const [sql, params] = statement.compile()
      return Effect.flatMap(
        withDriver((driver) => writeOne(driver, sql, params)),
        (outcome): Effect.Effect<ReadonlyArray<A>, TransactionError> => {
          // The driver boundary: rows are the driver's, typed as the statement declares them.
          if (outcome._tag === "Committed") return Effect.succeed(outcome.rows as ReadonlyArray<A>)
          const failed = Effect.fail(outcome.error)
          return outcome.rollbackFailed
            ? Effect.zipRight(Effect.logWarning(rollbackFailedWarning), failed)
            : failed
        }
      )
    })

/**
 * Runs one statement as a whole write transaction, with the guarantees and errors of
 * `immediate(statement)`: nothing persists unless COMMIT succeeded, and a failure says whether it
 * provably rolled back. On SQLite it is several times cheaper: BEGIN IMMEDIATE, the statement and
 * COMMIT run as one synchronous step of the driver (`Backend.withDriver`). Inside an open
 * transaction it joins it, as `immediate` does. Rows come back as the driver returns them.
 */
export const single = <A extends object>(
  statement: Statement.Statement<A>
): Effect.Effect<ReadonlyArray<A>, TransactionError, Backend> =>
  Effect.flatMap(Backend, (backend) => singleOn(backend)(statement))

/**
 * Runs `body` in a new top-level transaction even when one is open: it commits or rolls back on
 * its own. On PostgreSQL it takes another pooled connection. On a single-session backend, asking
 * for it from inside a transaction fails at once with `SessionInUse` instead of waiting forever.
 */
export const independent = <A, E, R>(
  body: Effect.Effect<A, E, R>
): Effect.Effect<A, E | TransactionError | SessionInUse, Exclude<R, Provided> | Backend> =>
  Effect.flatMap(Backend, (backend) =>
    Effect.flatMap(
      currentOn(backend),
      (active): Effect.Effect<A, E | TransactionError | SessionInUse, Exclude<R, Provided>> =>
        Option.isSome(active) && backend.singleSession
          ? Effect.fail(new SessionInUse({ backend: backend.kind }))
          : runTopLevel(backend, body, identity)
    )
  )

/** FNV-1a over the key, folded to a signed 53-bit integer: a stable advisory-lock id. */
const lockId = (key: string): number => {
  let hash = 0xcbf29ce484222325n
  for (const byte of new TextEncoder().encode(key)) {
    hash ^= BigInt(byte)
    hash = (hash * 0x100000001b3n) & 0xffffffffffffffffn
  }
  return Number(BigInt.asIntN(53, hash))
}

/**
 * Serializes the current transaction with every other transaction that locks the same key, until
 * it ends. On PostgreSQL and PGlite this is a transaction-scoped advisory lock; on SQLite and
 * libSQL `BEGIN IMMEDIATE` already excludes every other writer, so it does nothing.
 */
export const lock = (key: string): Effect.Effect<void, DbErrorType, Active | SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const active = yield* Active
    if (active.backend.dialect !== "pg") return
    const sql = yield* SqlClient.SqlClient
    yield* Effect.mapError(sql`SELECT pg_advisory_xact_lock(${lockId(key)})`, (error) => classify(error))
  })

/**
 * A drop-in `SqlClient.withTransaction` with Keel's semantics, installed on every client that
 * `Database.layer` builds so that code written against plain `@effect/sql` (its `Migrator`, its
 * persisted queue) gets them too. Failures of the transaction itself (busy BEGIN, rejected
 * COMMIT) arrive as an `SqlError` whose `cause` is the typed error; the body's errors are unchanged.
 */
export const withTransactionFor =
  (backend: Backend) =>
  <R, E, A>(body: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> => {
    const toSqlError = (error: TransactionError) => new SqlError({ cause: error, message: error.message })
    return Effect.flatMap(currentOn(backend), (active) =>
      Option.isSome(active)
        ? runSavepoint(active.value, body, toSqlError)
        : runTopLevel(backend, body, toSqlError)
    )
  }
