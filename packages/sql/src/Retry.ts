/**
 * Retry, restricted to work that cannot be duplicated by running it again (DESIGN.md rule 1).
 *
 * `run` accepts only an `Idempotent` value, and one can be made only by `read`, `transaction` or
 * `keyed`: a plain DML effect does not type-check as retryable. This is the only module that
 * calls `Effect.retry` (a check in `pnpm check` enforces it).
 */

import type * as Statement from "@effect/sql/Statement"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type { Backend } from "./Backend.js"
import { classify, isSqlError, isTransient } from "./DbError.js"
import * as Done from "./Done.js"
import type * as GroupCommit from "./GroupCommit.js"
import type * as Plan from "./Plan.js"
import * as Transaction from "./Transaction.js"

declare const IdempotentBrand: unique symbol

/** What makes an `Idempotent` value safe to re-run. */
export type Proof = "read" | "transaction" | "keyed"

/**
 * An effect carrying proof that running it again cannot duplicate a write, together with the
 * failures after which running it again is both safe and worth trying.
 */
export interface Idempotent<A, E, R> {
  readonly [IdempotentBrand]: Proof
  readonly proof: Proof
  readonly effect: Effect.Effect<A, E, R>
  readonly retryable: (error: E) => boolean
  /** True for a transaction that is its own even inside an open one: it may be re-run there too. */
  readonly independent?: boolean | undefined
}

const make_ = <A, E, R>(
  proof: Proof,
  effect: Effect.Effect<A, E, R>,
  retryable: (error: E) => boolean,
  independent?: boolean
) => ({ proof, effect, retryable, independent }) as Idempotent<A, E, R>

const transient = (error: unknown): boolean => isTransient(isSqlError(error) ? classify(error) : error)

/**
 * A statement that writes no rows (SELECT, or a PRAGMA that sets a connection mode). Re-run after
 * busy, locked, serialization and deadlock errors.
 */
export const read = <A, E, R>(effect: Effect.Effect<A, E, R>): Idempotent<A, E, R> =>
  make_("read", effect, transient)

/** A failure of a whole transaction after which re-running it is safe (it rolled back) and worthwhile. */
const rolledBackAndTransient = (error: unknown): boolean =>
  Predicate.isTagged(error, "CommitRejected") && Predicate.hasProperty(error, "reason")
    ? transient(error.reason)
    : transient(error)

/**
 * A whole write transaction (`Transaction.immediate`). It is re-run only when its failure proves it
 * rolled back and is transient: a busy BEGIN, a transient error inside the body (the transaction
 * was rolled back), or a COMMIT the database rejected with a transient error. A COMMIT whose
 * outcome is unknown is never re-run. Inside an enclosing transaction it runs once: only the
 * outermost transaction can be re-run as a whole.
 */
export const transaction = <A, E, R>(
  body: Effect.Effect<A, E, R>
): Idempotent<A, E | Transaction.TransactionError, Exclude<R, Transaction.Provided> | Backend> =>
  make_("transaction", Transaction.immediate(body), rolledBackAndTransient)

/**
 * A whole write transaction that stays its own inside the caller's (`Transaction.independent`): it
 * is re-run exactly when `transaction` would re-run it, also while the caller's transaction is open
 * (it is not part of it). On a single-session backend inside a transaction it fails `SessionInUse`.
 */
export const independent = <A, E, R>(
  body: Effect.Effect<A, E, R>
): Idempotent<
  A,
  E | Transaction.TransactionError | Transaction.SessionInUse,
  Exclude<R, Transaction.Provided> | Backend
> => make_("transaction", Transaction.independent(body), rolledBackAndTransient, true)

/**
 * One statement as a whole write transaction (`Transaction.single`, or `Transaction.singleOn` when
 * the backend is given), re-run exactly when `transaction` would re-run it: its failure proves it
 * rolled back and is transient.
 */
export function single<A extends object>(
  statement: Statement.Statement<A>
): Idempotent<ReadonlyArray<A>, Transaction.TransactionError, Backend>
export function single<A extends object>(
  statement: Statement.Statement<A>,
  backend: Backend
): Idempotent<ReadonlyArray<A>, Transaction.TransactionError, never>
export function single<A extends object>(
  statement: Statement.Statement<A>,
  backend?: Backend
): Idempotent<ReadonlyArray<A>, Transaction.TransactionError, Backend> {
  return make_(
    "transaction",
    backend === undefined ? Transaction.single(statement) : Transaction.singleOn(backend)(statement),
    rolledBackAndTransient
  )
}

/**
 * One statement as its own transaction in one round trip where the backend allows it
 * (`Transaction.autocommitOn`), re-run exactly when `transaction` would re-run it: its failure
 * proves it rolled back and is transient. In autocommit on PostgreSQL no failure after which it
 * may have run is re-run (`Transaction.autocommitFailure`: a lost connection, a lock error).
 */
export const autocommit = <A extends object>(
  statement: Statement.Statement<A>,
  backend: Backend
): Idempotent<ReadonlyArray<A>, Transaction.TransactionError, never> =>
  make_("transaction", Transaction.autocommitOn(backend)(statement), rolledBackAndTransient)

/**
 * A plan (`Plan.ts`) as a whole write transaction (`Transaction.plan`, or `Transaction.planOn` when
 * the backend is given), re-run exactly when `transaction` would re-run it. Each attempt makes a
 * fresh run of the plan.
 */
export function plan<A, E>(make: Plan.Make<A, E>): Idempotent<A, E | Transaction.TransactionError, Backend>
export function plan<A, E>(
  make: Plan.Make<A, E>,
  backend: Backend,
  options?: Transaction.PlanOptions
): Idempotent<A, E | Transaction.TransactionError, never>
export function plan<A, E>(
  make: Plan.Make<A, E>,
  backend?: Backend,
  options?: Transaction.PlanOptions
): Idempotent<A, E | Transaction.TransactionError, Backend> {
  return make_(
    "transaction",
    backend === undefined ? Transaction.plan(make) : Transaction.planOn(backend)(make, options),
    rolledBackAndTransient
  )
}

/**
 * A plan submitted to a group committer (`GroupCommit.ts`): its own transaction as far as its
 * outcome goes, so it is re-run exactly when `transaction` would re-run it.
 */
export const grouped = <A, E>(
  committer: GroupCommit.GroupCommit,
  make: Plan.Make<A, E>
): Idempotent<A, E | Transaction.TransactionError, never> =>
  make_("transaction", committer.submit(make), rolledBackAndTransient)

/**
 * A write guarded by a unique idempotency key: `write` inserts-or-ignores on the key, `read`
 * selects by the key. Because the key makes a second write a no-op, it is re-run after transient
 * errors and also when the outcome of the write is unknown (connection lost, COMMIT unknown).
 */
export const keyed = <A, E, R, E2, R2>(options: {
  readonly key: string
  readonly write: Effect.Effect<unknown, E, R>
  readonly read: Effect.Effect<A, E2, R2>
}): Idempotent<A, E | E2, R | R2> =>
  make_("keyed", Effect.zipRight(options.write, options.read), (error) => {
    const classified = isSqlError(error) ? classify(error) : error
    return (
      transient(classified) ||
      Predicate.isTagged(classified, "ConnectionLost") ||
      Predicate.isTagged(classified, "CommitOutcomeUnknown") ||
      Predicate.isTagged(classified, "CommitRejected")
    )
  })

/** The knobs of a retry policy. Validated: positive, bounded, and unable to overflow. */
export const PolicyOptions = Schema.Struct({
  /** First delay. */
  base: Schema.DurationFromSelf.pipe(Schema.betweenDuration(Duration.millis(1), Duration.seconds(10))),
  /** Growth per attempt. */
  factor: Schema.Number.pipe(Schema.between(1, 10)),
  /** The longest single delay. */
  maxDelay: Schema.DurationFromSelf.pipe(Schema.betweenDuration(Duration.millis(1), Duration.minutes(5))),
  /** Re-runs after the first attempt. */
  maxRetries: Schema.Int.pipe(Schema.between(0, 1000)),
  /** Total time after which no further attempt starts. */
  maxElapsed: Schema.DurationFromSelf.pipe(Schema.betweenDuration(Duration.millis(1), Duration.hours(1)))
})

/** The knobs of a retry policy. */
export type PolicyOptions = typeof PolicyOptions.Type

/** Exponential from 5 ms, doubling, each delay capped at 250 ms, at most 40 retries and 15 s. */
export const defaultOptions: PolicyOptions = {
  base: Duration.millis(5),
  factor: 2,
  maxDelay: Duration.millis(250),
  maxRetries: 40,
  maxElapsed: Duration.seconds(15)
}

/** A retry schedule. Its input is the failure being retried. */
export type Policy = Schedule.Schedule<unknown, unknown>

/**
 * Builds a policy: exponential from `base` by `factor`, each delay capped at `maxDelay` and then
 * jittered down by up to half (so processes that collide spread out), bounded by `maxRetries` and
 * `maxElapsed`. The exponential saturates at infinity and the cap applies first, so a delay never
 * exceeds `maxDelay`, never overflows and is never NaN.
 */
export const policy = (options: PolicyOptions): Policy =>
  Schedule.exponential(options.base, options.factor).pipe(
    Schedule.modifyDelayEffect((_, delay) =>
      Effect.map(Random.nextRange(0.5, 1), (jitter) =>
        Duration.millis(Math.floor(Duration.toMillis(Duration.min(delay, options.maxDelay)) * jitter))
      )
    ),
    Schedule.intersect(Schedule.recurs(options.maxRetries)),
    Schedule.upTo(options.maxElapsed)
  )

/** The policy `run` uses when none is given; replace it with `layerPolicy` or `withPolicy`. */
export class CurrentPolicy extends Context.Reference<CurrentPolicy>()("@keel/sql/Retry/CurrentPolicy", {
  defaultValue: (): Policy => policy(defaultOptions)
}) {}

/** A layer that sets the default policy. */
export const layerPolicy = (options: PolicyOptions): Layer.Layer<never> =>
  Layer.succeed(CurrentPolicy, policy(options))

/**
 * The policy read from `Config`: `KEEL_RETRY_BASE`, `KEEL_RETRY_FACTOR`, `KEEL_RETRY_MAX_DELAY`,
 * `KEEL_RETRY_MAX_RETRIES`, `KEEL_RETRY_MAX_ELAPSED` (durations like `10 millis`); missing ones
 * keep their defaults, invalid ones are a `ConfigError` naming the key.
 */
export const optionsConfig: Config.Config<PolicyOptions> = Config.all({
  base: Config.withDefault(Config.duration("KEEL_RETRY_BASE"), defaultOptions.base),
  factor: Config.withDefault(Config.number("KEEL_RETRY_FACTOR"), defaultOptions.factor),
  maxDelay: Config.withDefault(Config.duration("KEEL_RETRY_MAX_DELAY"), defaultOptions.maxDelay),
  maxRetries: Config.withDefault(Config.integer("KEEL_RETRY_MAX_RETRIES"), defaultOptions.maxRetries),
  maxElapsed: Config.withDefault(Config.duration("KEEL_RETRY_MAX_ELAPSED"), defaultOptions.maxElapsed)
}).pipe(
  Config.mapOrFail((raw) =>
    Either.mapLeft(Schema.decodeEither(PolicyOptions)(raw), (error) =>
      ConfigError.InvalidData(["KEEL_RETRY"], error.message)
    )
  )
)

/** A layer that sets the default policy from `optionsConfig`. */
export const layerConfig: Layer.Layer<never, ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.map(optionsConfig, layerPolicy)
)

/** Runs `effect` with `policy` as the default policy. */
export const withPolicy =
  (policy: Policy) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.provideService(effect, CurrentPolicy, policy)

/** Counts every re-run, labelled by proof. */
export const retries = Metric.counter("keel_sql_retries_total", {
  description: "Idempotent database work re-run after a transient failure"
})

const retriesByProof: Record<Proof, Metric.Metric.Counter<number>> = {
  read: Metric.tagged(retries, "proof", "read"),
  transaction: Metric.tagged(retries, "proof", "transaction"),
  keyed: Metric.tagged(retries, "proof", "keyed")
}

/**
 * Re-runs `work` under `policy` (default: the `CurrentPolicy`) after its first attempt failed with
 * `first`, a failure its proof allows: the schedule sees that failure first (and waits its first
 * delay) before the first re-run.
 */
const rerun = <A, E, R>(work: Idempotent<A, E, R>, first: E, policy?: Policy): Effect.Effect<A, E, R> =>
  Effect.flatMap(policy === undefined ? CurrentPolicy : Effect.succeed(policy), (schedule) => {
    const again = Effect.zipRight(Metric.increment(retriesByProof[work.proof]), work.effect)
    let replayed = false
    const attempt = Effect.suspend(() => {
      if (replayed) return again
      replayed = true
      return Effect.fail(first)
    })
    return Effect.retry(attempt, { schedule, while: work.retryable })
  })

/**
 * Runs idempotent work, re-running it under `policy` (default: the `CurrentPolicy`) while its
 * failure is one its proof allows. The last failure is returned when the policy gives up.
 * Work that succeeds at once never touches the retry machinery (this is the hot path).
 */
export const run = <A, E, R>(work: Idempotent<A, E, R>, policy?: Policy): Effect.Effect<A, E, R> => {
  const once = Effect.catchIf(work.effect, work.retryable, (first) => rerun(work, first, policy))
  if (work.proof !== "transaction" || work.independent === true) return once
  // Only the outermost transaction can be re-run as a whole: inside one, run once.
  return Effect.contextWithEffect((context: Context.Context<R>) =>
    Option.isSome(Context.getOption(context, Transaction.Active)) ? work.effect : once
  )
}

/**
 * `run(plan(make, backend, options))` with its first attempt made in the caller's synchronous
 * step, on a backend with a synchronous driver (better-sqlite3) while nobody holds its session
 * (`Transaction.planNow`): the effect to continue with — the attempt's `Exit` when it decided the
 * outcome, or the re-runs under the default policy when it provably rolled back on a transient
 * error. `undefined` when the session is held and nothing ran: use `run(plan(…))`, which waits for
 * the session or joins the caller's transaction. `undefined` itself on every other backend.
 */
export const planNow = (backend: Backend) => {
  const now = Transaction.planNow(backend)
  if (now === undefined) return undefined
  return <A, E>(
    make: Plan.Make<A, E>,
    options?: Transaction.PlanOptions
  ): Effect.Effect<A, E | Transaction.TransactionError> | undefined => {
    const ran = now(make, options)
    if (Option.isNone(ran)) return undefined
    const attempt = ran.value
    if (!Done.isDone(attempt) || Exit.isSuccess(attempt)) return attempt
    const first = Cause.failureOption(attempt.cause)
    return Option.isSome(first) && rolledBackAndTransient(first.value)
      ? rerun(plan(make, backend, options), first.value)
      : attempt
  }
}
