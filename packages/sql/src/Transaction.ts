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
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { identity } from "effect/Function"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import { Backend, type Session } from "./Backend.js"
import { classify, commitNeverApplied, type DbError as DbErrorType, isTransient, refine } from "./DbError.js"
import * as Driver from "./internal/driver.js"
import * as Plan from "./Plan.js"
import {
  CommitOutcomeUnknown,
  CommitRejected,
  SessionInUse,
  TransactionAborted,
  type TransactionError
} from "./TransactionError.js"

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

export {
  CommitOutcomeUnknown,
  CommitRejected,
  isRolledBack,
  SessionInUse,
  TransactionAborted,
  type TransactionError
} from "./TransactionError.js"

const commandOf = (raw: unknown): string | undefined =>
  Predicate.hasProperty(raw, "command") && typeof raw.command === "string" ? raw.command : undefined

/** SQLite's answer to ROLLBACK when the transaction already ended. */
const noActiveTransaction = (error: unknown): boolean =>
  /no transaction is active/i.test(classify(error).message)

/**
 * Ends a transaction whose body succeeded. A rejected COMMIT is followed by ROLLBACK: on SQLite a
 * failed COMMIT (busy, deferred foreign key) leaves the transaction open, and a later plain write
 * would silently join it. If that ROLLBACK succeeds the transaction provably rolled back; if the
 * session has no transaction any more, the COMMIT may or may not have taken effect — unless its
 * failure proves it did not (`commitNeverApplied`: the disk was full).
 */
const commit = (session: Session): Effect.Effect<void, TransactionError> =>
  Effect.matchCauseEffect(session.commit, {
    onSuccess: (raw) => (commandOf(raw) === "ROLLBACK" ? Effect.fail(new TransactionAborted()) : Effect.void),
    onFailure: (cause) => {
      const reason = classify(Cause.squash(cause))
      return Effect.matchCauseEffect(session.rollback, {
        onSuccess: () => Effect.fail(new CommitRejected({ reason })),
        onFailure: () =>
          Effect.fail(
            commitNeverApplied(reason) ? new CommitRejected({ reason }) : new CommitOutcomeUnknown({ reason })
          )
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
    // Only the wait for the session is interruptible (a timeout on it fires on time); from the
    // moment it is acquired, the session is always ended and released, whatever happens to the body.
    Effect.flatMap(Effect.mapError(backend.openTransaction(restore), onError), (session) =>
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

const currentOn = (backend: Backend): Effect.Effect<Option.Option<ActiveTransaction>> =>
  Effect.contextWith((context: Context.Context<never>) =>
    Option.filter(Context.getOption(context, Active), (active) => active.backend === backend)
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
 * Runs a plan statement by statement on the current connection (the Effect path). `begin`, when
 * given, is where the rest of the plan goes at its `Plan.begin`; otherwise that instruction does
 * nothing (the plan already runs inside its transaction).
 */
const interpret = <A, E, E2 = never>(
  plan: Plan.Plan<A, E>,
  input?: unknown,
  begin?: (rest: Effect.Effect<A, E | DbErrorType>) => Effect.Effect<A, E | E2 | DbErrorType>
): Effect.Effect<A, E | E2 | DbErrorType> => {
  const next = plan.next(input)
  if (next.done === true) return Effect.succeed(next.value)
  const instruction = next.value
  switch (instruction._tag) {
    case "Abort":
      return Effect.fail(instruction.error)
    case "Begin":
      return begin === undefined ? interpret(plan) : begin(Effect.suspend(() => interpret(plan)))
    case "Run":
      return Effect.flatMap(refine(instruction.statement), (rows) => interpret(plan, rows, begin))
    case "Synchronous":
      return interpret(plan, false, begin)
    case "Each": {
      const statement = instruction.statement
      if (instruction.count) return Effect.dieMessage("Plan.eachCount runs on the synchronous driver only")
      return Effect.flatMap(
        Effect.forEach(instruction.items, (values) => refine(statement(...values))),
        (rows) => interpret(plan, rows, begin)
      )
    }
  }
}

const interpreted = <A, E>(make: Plan.Make<A, E>): Effect.Effect<A, E | DbErrorType> =>
  Effect.suspend(() => interpret(make()))

/** The effect of a transaction that ran on the synchronous driver. */
const fromOutcome = <A, E>(outcome: Driver.Outcome<A, E>): Effect.Effect<A, E | TransactionError> => {
  if (outcome._tag === "Committed") return Exit.succeed(outcome.value)
  const failed = Exit.fail(outcome.error)
  return outcome.rollbackFailed ? Effect.zipRight(Effect.logWarning(rollbackFailedWarning), failed) : failed
}

/**
 * `plan` on a given backend: for services that hold their `Backend` (it saves providing one per
 * call, which costs more than a statement on SQLite).
 */
export const planOn =
  (backend: Backend) =>
  <A, E>(make: Plan.Make<A, E>, options: PlanOptions = {}): Effect.Effect<A, E | TransactionError> =>
    Effect.flatMap(currentOn(backend), (active) => {
      if (Option.isSome(active)) return runSavepoint(active.value, interpreted(make), identity)
      const lazy = options.begin === "lazy"
      const withDriver = backend.withDriver
      if (withDriver !== undefined) {
        return Effect.flatMap(
          withDriver((driver) => Driver.transaction(driver, make, lazy)),
          fromOutcome
        )
      }
      if (!lazy) return runTopLevel(backend, interpreted(make), identity)
      return Effect.suspend(() =>
        interpret(make(), undefined, (rest) => runTopLevel(backend, rest, identity))
      )
    })

/**
 * `planOn` without waiting, on a backend with a synchronous driver (better-sqlite3; undefined
 * elsewhere): when the session is free at once, the plan runs as a whole write transaction in the
 * caller's synchronous step — with the outcomes of `plan` — and its outcome comes back as an
 * `Exit` (an effect already done; a failed ROLLBACK logs first). `None` when the session is held (a
 * transaction is open, its own or another fiber's): nothing ran, and `planOn` is the way.
 */
export const planNow = (
  backend: Backend
):
  | (<A, E>(
      make: Plan.Make<A, E>,
      options?: PlanOptions
    ) => Option.Option<Effect.Effect<A, E | TransactionError>>)
  | undefined => {
  const driverNow = backend.driverNow
  if (driverNow === undefined) return undefined
  return (make, options = {}) =>
    Option.map(
      driverNow((driver) => Driver.transaction(driver, make, options.begin === "lazy")),
      fromOutcome
    )
}

/** How `plan` runs a plan. */
export interface PlanOptions {
  /**
   * `"lazy"`: the write transaction starts at the plan's `Plan.begin`; the statements before it are
   * reads on their own, and a plan that ends before it takes no write lock. Default: at the start.
   */
  readonly begin?: "eager" | "lazy" | undefined
}

/**
 * Runs a plan (see `Plan.ts`) as a whole write transaction, with the guarantees and errors of
 * `immediate`: nothing persists unless COMMIT succeeded, an aborted plan rolls back and fails with
 * its error, and a failure says whether it provably rolled back. On SQLite (better-sqlite3) BEGIN
 * IMMEDIATE, every statement of the plan and COMMIT run as one synchronous step of the driver, never
 * inside another fiber's open transaction. Inside an open transaction it joins it as a savepoint.
 */
export const plan = <A, E>(
  make: Plan.Make<A, E>,
  options: PlanOptions = {}
): Effect.Effect<A, E | TransactionError, Backend> =>
  Effect.flatMap(Backend, (backend) => planOn(backend)(make, options))

/**
 * `single` on a given backend: for services that hold their `Backend` (it saves providing one per
 * call, which costs more than the statement on SQLite).
 */
export const singleOn =
  (backend: Backend) =>
  <A extends object>(statement: Statement.Statement<A>): Effect.Effect<ReadonlyArray<A>, TransactionError> =>
    planOn(backend)(Plan.single(statement))

/**
 * The failure of a statement run in autocommit, typed: `CommitOutcomeUnknown` when it may have
 * taken effect — a lost connection, and (DESIGN.md rule 1) a lock or serialization error, which an
 * engine may report after the write; otherwise the classified error, which proves it did not run.
 */
export const autocommitFailure = (error: unknown): TransactionError => {
  const reason = classify(error)
  return isTransient(reason) || reason._tag === "ConnectionLost"
    ? new CommitOutcomeUnknown({ reason })
    : reason
}

/**
 * One statement as its own transaction in the fewest round trips: on PostgreSQL (a pool of
 * sessions) it runs in autocommit — a statement is atomic on its own, and BEGIN and COMMIT would be
 * two more round trips — its failures typed by `autocommitFailure`; elsewhere, and inside an open
 * transaction on the backend (which it joins as a savepoint), it is `singleOn`.
 */
export const autocommitOn = (backend: Backend) => {
  const single = singleOn(backend)
  if (backend.kind !== "postgres") return single
  return <A extends object>(
    statement: Statement.Statement<A>
  ): Effect.Effect<ReadonlyArray<A>, TransactionError> =>
    Effect.flatMap(currentOn(backend), (active) =>
      Option.isSome(active) ? single(statement) : Effect.mapError(statement, autocommitFailure)
    )
}

/**
 * Runs one statement as a whole write transaction: `plan` of that one statement. Rows come back as
 * the driver returns them.
 */
export const single = <A extends object>(
  statement: Statement.Statement<A>
): Effect.Effect<ReadonlyArray<A>, TransactionError, Backend> =>
  Effect.flatMap(Backend, (backend) => singleOn(backend)(statement))

/**
 * One caller's plan in a group transaction: the plan, the result it had in its savepoint (kept
 * until the transaction has ended: a plan that succeeded is only as good as the COMMIT that
 * follows), and how to resume the caller.
 */
export interface GroupMember<A = unknown, E = unknown> {
  readonly make: Plan.Make<A, E>
  own: Exit.Exit<A, E | DbErrorType> | undefined
  resume(exit: Exit.Exit<A, E | TransactionError>): void
}

/** How a group drives and settles its members. */
const members: Driver.Members<GroupMember> = {
  drive: (member, driver) => {
    const stepped = Driver.drive(driver, member.make())
    member.own = stepped._tag === "Done" ? Exit.succeed(stepped.value) : Exit.fail(stepped.error)
    return stepped
  },
  settle: (member, ended) => {
    const own = member.own
    if (own !== undefined && Exit.isFailure(own)) member.resume(own)
    else if (own === undefined || ended !== undefined)
      member.resume(Exit.fail(ended ?? new TransactionAborted()))
    else member.resume(own)
  },
  die: (member, defect) => member.resume(Exit.die(defect))
}

/** A member's plan on the Effect path; it fails (so its savepoint rolls back) when the plan fails. */
const memberEffect = (member: GroupMember): Effect.Effect<void, unknown> =>
  Effect.suspend(() => interpret(member.make())).pipe(
    Effect.exit,
    Effect.flatMap((exit) => {
      member.own = exit
      return Exit.isSuccess(exit) ? Effect.void : Effect.fail(exit.cause)
    })
  )

/**
 * Runs the members as one write transaction, each plan in a savepoint of its own, and settles each
 * member: a plan that fails or aborts fails only its caller; the others share the COMMIT's
 * outcome. On SQLite it is one synchronous step of the driver; elsewhere the plans run one after
 * another inside `immediate`.
 */
export const groupOn =
  (backend: Backend) =>
  (group: ReadonlyArray<GroupMember>): Effect.Effect<void> => {
    const withDriver = backend.withDriver
    if (withDriver !== undefined) {
      return Effect.flatMap(
        withDriver((driver) => Driver.group(driver, group, members)),
        (clean) => (clean ? Effect.void : Effect.logWarning(rollbackFailedWarning))
      )
    }
    // A lone member's failure must roll the transaction back (it has no savepoint of its own); the
    // member already holds that failure, so the transaction only reports that it happened.
    const body: Effect.Effect<void, PlanFailed, Provided> =
      group.length === 1
        ? Effect.forEach(group, (one) => Effect.mapError(memberEffect(one), () => planFailed), {
            discard: true
          })
        : Effect.flatMap(Active, (active) =>
            Effect.forEach(group, (one) => Effect.exit(runSavepoint(active, memberEffect(one), identity)), {
              discard: true
            })
          )
    return Effect.matchCauseEffect(runTopLevel(backend, body, identity), {
      onSuccess: () => Effect.sync(() => settleAll(group, undefined)),
      onFailure: (cause) =>
        Effect.sync(() => {
          const failure = Cause.failureOption(cause)
          if (Option.isNone(failure)) for (const one of group) members.die(one, Cause.squash(cause))
          else {
            const ended = failure.value
            settleAll(group, ended._tag === "PlanFailed" ? undefined : ended)
          }
        })
    })
  }

const planFailed = { _tag: "PlanFailed" } as const
type PlanFailed = typeof planFailed

const settleAll = (group: ReadonlyArray<GroupMember>, ended: TransactionError | undefined) => {
  for (const one of group) members.settle(one, ended)
}

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

/**
 * FNV-1a over the key, folded to a signed 53-bit integer: the stable advisory-lock id `lock(key)`
 * takes on PostgreSQL (for a plan that takes the same lock with its own statement).
 */
export const lockId = (key: string): number => {
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
