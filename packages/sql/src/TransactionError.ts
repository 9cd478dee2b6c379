/**
 * How a transaction can end other than with its body's own result: COMMIT rejected (rolled back),
 * aborted by an earlier failed statement, an outcome nobody can know, or a second transaction asked
 * for on a session this fiber already holds. `Transaction` re-exports each of them.
 */
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import { DbError, type DbError as DbErrorType } from "./DbError.js"

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
