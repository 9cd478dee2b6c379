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

/**
 * Run one statement once per item: `statement` is a template over the item's values, each bound
 * as one parameter (a string, number, bigint, null or bytes — never an array or a fragment); the
 * plan receives the rows of every run, in order, or with `count` how many rows each run changed.
 * On the synchronous driver the template is compiled once and each run binds the item's values to
 * the same prepared statement (the fastest way to write many rows on better-sqlite3); elsewhere
 * each item is a statement of its own. The template must be a function of its values alone: one
 * compiled template is kept per template function, so a caller that hoists the function (every
 * per-run value passed as a value, not captured) compiles it once for all its plans.
 */
export interface Each {
  readonly _tag: "Each"
  readonly statement: (...values: ReadonlyArray<unknown>) => Statement.Statement<object>
  readonly items: ReadonlyArray<ReadonlyArray<unknown>>
  /** Receive the number of rows each run changed instead of its rows (synchronous driver only). */
  readonly count: boolean
}

/** Ask whether the plan runs on the synchronous driver (better-sqlite3, outside a caller's transaction). */
export interface Synchronous {
  readonly _tag: "Synchronous"
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
export type Instruction<E> = Run | Each | Synchronous | Abort<E> | Begin

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

/** The `Each` instruction of `each` and `eachCount`; what the driver answers. */
function* eachOf<P extends ReadonlyArray<unknown>>(
  statement: (...values: P) => Statement.Statement<object>,
  items: ReadonlyArray<Readonly<P>>,
  count: boolean
): Generator<Each, unknown, unknown> {
  if (items.length === 0) return []
  // The template is only ever called with an item of `items`, whose type is `P`.
  const template = statement as unknown as Each["statement"]
  return yield { _tag: "Each", statement: template, items, count }
}

/** Runs `statement` once per item of `items` (see `Each`); the rows of each run, in order. */
export function* each<A extends object, P extends ReadonlyArray<unknown>>(
  statement: (...values: P) => Statement.Statement<A>,
  items: ReadonlyArray<Readonly<P>>
): Generator<Each, ReadonlyArray<ReadonlyArray<A>>, unknown> {
  return (yield* eachOf(statement, items, false)) as ReadonlyArray<ReadonlyArray<A>>
}

/**
 * Runs the template `statement` once, with `values` (see `Each`: on the synchronous driver the
 * template is compiled once per template function, not once per run); its rows.
 */
export function* bound<A extends object, P extends ReadonlyArray<unknown>>(
  statement: (...values: P) => Statement.Statement<A>,
  values: Readonly<P>
): Generator<Each, ReadonlyArray<A>, unknown> {
  const [rows] = yield* each(statement, [values])
  return rows ?? []
}

/**
 * Runs `statement` (without RETURNING) once per item of `items` on the synchronous driver; how
 * many rows each run changed. Only there: a plan asks `synchronous()` first and runs another
 * statement elsewhere (on the Effect path this is a defect, as the drivers do not report changes
 * alike).
 */
export function* eachCount<P extends ReadonlyArray<unknown>>(
  statement: (...values: P) => Statement.Statement<object>,
  items: ReadonlyArray<Readonly<P>>
): Generator<Each, ReadonlyArray<number>, unknown> {
  return (yield* eachOf(statement, items, true)) as ReadonlyArray<number>
}

/** True when the plan runs on the synchronous driver, where `eachCount` is available. */
export function* synchronous(): Generator<Synchronous, boolean, unknown> {
  const result = yield { _tag: "Synchronous" }
  return result === true
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
