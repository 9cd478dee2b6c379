/**
 * What a database failure looks like at a store's boundary, and the one place a store maps it to
 * its own error (`refail`): a driver's `SqlError` is classified into a `DbError`; a transaction's
 * own failures (`CommitRejected`, `TransactionAborted`, `CommitOutcomeUnknown`, `SessionInUse`)
 * pass as they are. Domain packages wrap the result in their `…StoreError { operation, cause }`.
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import { classify, DbError, isDbError, isSqlError } from "./DbError.js"
import { CommitOutcomeUnknown, CommitRejected, SessionInUse, TransactionAborted } from "./TransactionError.js"

/** What the database reported, typed: a classified `DbError` or a failed transaction end. */
export const Cause = Schema.Union(
  DbError,
  CommitRejected,
  TransactionAborted,
  CommitOutcomeUnknown,
  SessionInUse
)

/** What the database reported. */
export type Cause = typeof Cause.Type

const transactionTags: ReadonlySet<string> = new Set([
  "CommitRejected",
  "TransactionAborted",
  "CommitOutcomeUnknown",
  "SessionInUse"
])

/** True for a database failure in any of its shapes (`SqlError`, `DbError`, a transaction's). */
export const is = (u: unknown): u is SqlError | Cause =>
  isSqlError(u) || isDbError(u) || (Predicate.hasProperty(u, "_tag") && transactionTags.has(String(u._tag)))

/** The typed cause of a database failure (a `SqlError` is classified; the rest pass as they are). */
export const cause = (failure: SqlError | Cause): Cause => (isSqlError(failure) ? classify(failure) : failure)

/** `refail` of one error: a database failure becomes `wrap(cause)`, any other error stays. */
export const refailOne =
  <E2>(wrap: (cause: Cause) => E2) =>
  <E>(error: E): Exclude<E, SqlError | Cause> | E2 =>
    is(error) ? wrap(cause(error)) : (error as Exclude<E, SqlError | Cause>)

/**
 * Maps every database failure of `effect` to `wrap(cause)` — the store boundary, in one step —
 * and leaves its other errors alone.
 */
export const refail =
  <E2>(wrap: (cause: Cause) => E2) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, Exclude<E, SqlError | Cause> | E2, R> =>
    Effect.mapError(effect, refailOne(wrap))
