/**
 * A plan: the body of a short write transaction whose statements are known, written once and run
 * two ways by `Transaction.plan`. On better-sqlite3 the whole transaction — BEGIN IMMEDIATE, every
 * statement of the plan, COMMIT — runs as one synchronous step of the driver: nothing can
 * interleave with it and no lock is held across the event loop. On every other backend the same
 * plan runs statement by statement inside `Transaction.immediate`.
 *
 * A plan is a generator: it yields `Plan.rows(statement)` to run a statement and get its rows,
 * decides what to do next in plain code, and either returns its result (the transaction commits)
 * or yields `Plan.abort(error)` (the transaction rolls back and fails with `error`).
 *
 * ```ts
 * const claim = (): Plan.Plan<Claimed, QueueGone> =>
 *   (function* () {
 *     const [queue] = yield* Plan.rows(sql`SELECT id FROM queues WHERE name = ${name}`)
 *     if (queue === undefined) return yield* Plan.abort(new QueueGone())
 *     return yield* Plan.rows(sql`UPDATE … RETURNING …`)
 *   })()
 * ```
 */
import type * as Statement from "@effect/sql/Statement"

/** Run one statement; the plan receives its rows. */
export interface Run {
  readonly _tag: "Run"
  readonly statement: Statement.Statement<object>
}

/** End the plan with a failure: the transaction (or the plan's savepoint) rolls back. */
export interface Abort<E> {
  readonly _tag: "Abort"
  readonly error: E
}

/**
 * Start the write transaction here (`BEGIN IMMEDIATE` on SQLite) when the plan was run with
 * `{ begin: "lazy" }`: the statements before it run on their own, outside any transaction, so they
 * must only read. A plan that returns before it begins takes no write lock at all (an idle read).
 * Anywhere else it does nothing.
 */
export interface Begin {
  readonly _tag: "Begin"
}

/** What a plan yields. */
export type Instruction<E> = Run | Abort<E> | Begin

/** A running plan: yields instructions, receives rows, returns its result. */
export type Plan<A, E = never> = Generator<Instruction<E>, A, unknown>

/** Makes a fresh run of a plan (a plan that is retried is made again for each attempt). */
export type Make<A, E = never> = () => Plan<A, E>

/**
 * Runs `statement` and returns its rows, typed as the statement declares them (the driver's rows
 * are not decoded: the statement's author vouches for their shape, as `sql<Row>` does).
 */
export function* rows<A extends object>(
  statement: Statement.Statement<A>
): Generator<Run, ReadonlyArray<A>, unknown> {
  const result = yield { _tag: "Run", statement }
  return result as ReadonlyArray<A>
}

/** Runs `statement`, ignoring its rows. */
export function* run(statement: Statement.Statement<object>): Generator<Run, void, unknown> {
  yield { _tag: "Run", statement }
}

/** Starts the write transaction here, for a plan run with `{ begin: "lazy" }` (see `Begin`). */
export function* begin(): Generator<Begin, void, unknown> {
  yield { _tag: "Begin" }
}

/**
 * Runs `statement` over `items` in chunks that keep each statement under `parameterLimit` bind
 * parameters (`parametersPerItem` per item plus `fixedParameters`); the rows of every chunk.
 */
export function* chunked<A, B extends object>(
  items: ReadonlyArray<A>,
  limits: {
    readonly parameterLimit: number
    readonly parametersPerItem: number
    readonly fixedParameters?: number | undefined
  },
  statement: (chunk: ReadonlyArray<A>) => Statement.Statement<B>
): Generator<Run, ReadonlyArray<B>, unknown> {
  const size = Math.max(
    1,
    Math.floor(
      (limits.parameterLimit - (limits.fixedParameters ?? 0)) / Math.max(1, limits.parametersPerItem)
    )
  )
  if (items.length <= size) return items.length === 0 ? [] : yield* rows(statement(items))
  const all: Array<B> = []
  for (let start = 0; start < items.length; start += size) {
    all.push(...(yield* rows(statement(items.slice(start, start + size)))))
  }
  return all
}

/** Ends the plan with `error`: nothing it wrote persists. */
export function* abort<E>(error: E): Generator<Abort<E>, never, unknown> {
  yield { _tag: "Abort", error }
  throw new Error("a plan resumed after abort")
}

/** A plan of one statement: its rows. */
export const single =
  <A extends object>(statement: Statement.Statement<A>): Make<ReadonlyArray<A>> =>
  () =>
    rows(statement)
