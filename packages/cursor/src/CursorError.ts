/**
 * Every way a cursor operation can fail, as `Schema.TaggedError`s that cross the HTTP boundary.
 * Bad input fails before anything is read or written; a failed write names what stayed pending.
 */
import * as DbError from "@keel/sql/DbError"
import * as Transaction from "@keel/sql/Transaction"
import * as Schema from "effect/Schema"

/** Renders user input for a message: quoted, with control characters escaped. */
const quote = (value: string): string => JSON.stringify(value)

/** The longest piece of rejected input an error carries (the first characters of it). */
export const maxEchoed = 100

/** The first `maxEchoed` characters of `value`, so an error never carries megabytes of input. */
export const echo = (value: string): string =>
  value.length <= maxEchoed ? value : `${value.slice(0, maxEchoed)}…`

/**
 * A position is not a stream id (`<ms>-<seq>`) or an offset (a non-negative integer), or a part
 * of it exceeds 2^64 − 1. Nothing was changed.
 */
export class InvalidPosition extends Schema.TaggedError<InvalidPosition>()("InvalidPosition", {
  /** Which input held it: `position`, `start`… */
  field: Schema.String,
  /** The rejected text (its first 100 characters). */
  position: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.field}: ${quote(this.position)} is not a stream position: ${this.reason}`
  }
}

/** A peer or namespace name is empty, too long, padded with spaces or has control characters. Nothing was changed. */
export class InvalidPeer extends Schema.TaggedError<InvalidPeer>()("InvalidPeer", {
  /** `peer` or `namespace`. */
  field: Schema.String,
  /** The rejected name (its first 100 characters). */
  value: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.field}: invalid name ${quote(this.value)}: ${this.reason}`
  }
}

/**
 * The store's configuration is invalid, or the namespace was declared with another position kind;
 * the store was not started.
 */
export class InvalidConfig extends Schema.TaggedError<InvalidConfig>()("InvalidConfig", {
  /** `namespace`, `flushInterval`, `start`, `positionKind` or `idleExpiry`. */
  field: Schema.String,
  value: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `cursor store config: ${this.field} = ${quote(this.value)}: ${this.reason}`
  }
}

/**
 * A fenced writer was replaced: another store acquired a newer fence (epoch) of the namespace, so
 * this one's writes are refused and rolled back. It is a zombie; it should stop, not retry.
 */
export class Fenced extends Schema.TaggedError<Fenced>()("Fenced", {
  namespace: Schema.String,
  /** The fence this writer holds. */
  epoch: Schema.Number,
  /** The namespace's current fence. */
  current: Schema.Number
}) {
  override get message(): string {
    return `namespace ${quote(this.namespace)} is fenced at epoch ${this.current}; this writer holds epoch ${this.epoch} and may not write`
  }
}

/**
 * The namespace was declared with another position kind by a store that wrote first, after this
 * store started on the namespace while it was still undeclared. The write rolled back; this store's
 * configuration conflicts with the namespace's and it should be restarted with the declared kind.
 */
export class KindConflict extends Schema.TaggedError<KindConflict>()("KindConflict", {
  namespace: Schema.String,
  /** The kind the namespace holds. */
  declared: Schema.String,
  /** The kind this store would have declared. */
  wanted: Schema.String
}) {
  override get message(): string {
    return `namespace ${quote(this.namespace)} holds positions of kind ${this.declared}; this store writes ${this.wanted}`
  }
}

/**
 * Why a database operation failed: a classified driver error, a transaction that did not commit,
 * a write asked for inside a transaction that holds the only session, a fenced writer, or a
 * namespace declared with another kind since the store started.
 */
export const StoreFailure = Schema.Union(
  DbError.DbError,
  Transaction.CommitRejected,
  Transaction.TransactionAborted,
  Transaction.CommitOutcomeUnknown,
  Transaction.SessionInUse,
  Fenced,
  KindConflict
)

/** Why a database operation failed. */
export type StoreFailure = typeof StoreFailure.Type

/**
 * A flush failed after the retry policy gave up (or with an error that is not worth retrying).
 * Every cursor it tried to persist is still in memory and still dirty: the next flush tries again.
 */
export class FlushFailed extends Schema.TaggedError<FlushFailed>()("FlushFailed", {
  namespace: Schema.String,
  /** How many dirty cursors the flush tried to persist; all of them stay dirty. */
  peers: Schema.Number,
  cause: StoreFailure
}) {
  override get message(): string {
    return `flushing ${this.peers} cursor(s) of namespace ${quote(this.namespace)} failed; they stay pending: ${this.cause.message}`
  }
}

/** A read, delete, reset, import, expiry or checkpoint failed in the database. Memory is unchanged. */
export class CursorStoreError extends Schema.TaggedError<CursorStoreError>()("CursorStoreError", {
  /** `get`, `getAll`, `delete`, `reset`, `import`, `expire`, `checkpoint`… */
  operation: Schema.String,
  namespace: Schema.String,
  cause: StoreFailure
}) {
  override get message(): string {
    return `cursor ${this.operation} in namespace ${quote(this.namespace)} failed: ${this.cause.message}`
  }
}

/**
 * The store is shutting down (its final flush has begun): a position set now could not be
 * persisted, so it is refused rather than silently lost.
 */
export class StoreClosed extends Schema.TaggedError<StoreClosed>()("StoreClosed", {
  namespace: Schema.String
}) {
  override get message(): string {
    return `the cursor store of namespace ${quote(this.namespace)} is closed; the position was not recorded`
  }
}
