/**
 * Every way a queue operation can fail, as `Schema.TaggedError`s that cross the HTTP boundary.
 * Bad input fails before anything is read or written; each error names what to fix. Database
 * failures are wrapped on purpose, at the service boundary, in `QueueStoreError`.
 */
import * as Batch from "@keel/sql/Batch"
import * as DbError from "@keel/sql/DbError"
import * as Transaction from "@keel/sql/Transaction"
import * as Schema from "effect/Schema"

/** Renders user input for a message: quoted, with control characters escaped. */
const quote = (value: string): string => JSON.stringify(value)

/** A queue name is not 1–64 of `a-z`, `0-9`, `_`, `-`. Nothing was read or written. */
export class InvalidQueueName extends Schema.TaggedError<InvalidQueueName>()("InvalidQueueName", {
  name: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `invalid queue name ${quote(this.name)}: ${this.reason}`
  }
}

/** No queue has this name. Nothing was written. */
export class QueueNotFound extends Schema.TaggedError<QueueNotFound>()("QueueNotFound", {
  queue: Schema.String
}) {
  override get message(): string {
    return `queue ${quote(this.queue)} does not exist`
  }
}

/** No message of this id is in the queue: it never was, or it was acknowledged, dead-lettered or cancelled. */
export class MessageNotFound extends Schema.TaggedError<MessageNotFound>()("MessageNotFound", {
  queue: Schema.String,
  id: Schema.Number
}) {
  override get message(): string {
    return `message ${this.id} is not in queue ${quote(this.queue)}`
  }
}

/** The message is leased (a consumer is working on it), so it cannot be changed. Nothing was changed. */
export class MessageLeased extends Schema.TaggedError<MessageLeased>()("MessageLeased", {
  queue: Schema.String,
  id: Schema.Number
}) {
  override get message(): string {
    return `message ${this.id} of queue ${quote(this.queue)} is leased and cannot be changed (cancel it instead)`
  }
}

/** `create` found a queue of this name already. It was left unchanged. */
export class QueueAlreadyExists extends Schema.TaggedError<QueueAlreadyExists>()("QueueAlreadyExists", {
  queue: Schema.String
}) {
  override get message(): string {
    return `queue ${quote(this.queue)} already exists`
  }
}

/**
 * `deleteQueue` was refused: consumers hold leases on some of its messages. Nothing was deleted;
 * pass `force` to delete anyway (their acknowledgements then fail with `LeaseLost`).
 */
export class QueueInFlight extends Schema.TaggedError<QueueInFlight>()("QueueInFlight", {
  queue: Schema.String,
  inFlight: Schema.Number
}) {
  override get message(): string {
    return `queue ${quote(this.queue)} has ${this.inFlight} message(s) in flight; delete it with force to discard them`
  }
}

/** A payload is not a JSON value (or a text payload does not parse). Nothing was written. */
export class InvalidPayload extends Schema.TaggedError<InvalidPayload>()("InvalidPayload", {
  /** Where in the payload, as a JSON path (`$.items[3]`), and what is wrong there. */
  reason: Schema.String
}) {
  override get message(): string {
    return `invalid payload: ${this.reason}`
  }
}

/** A payload's JSON text is larger than the service accepts. Nothing was written. */
export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", {
  /** UTF-8 bytes of the payload's JSON text. */
  size: Schema.Number,
  limit: Schema.Number
}) {
  override get message(): string {
    return `a payload of ${this.size} bytes exceeds the limit of ${this.limit} bytes`
  }
}

/** A batch is larger than its operation accepts (re-used from @keel/sql). Nothing was written. */
export const BatchTooLarge = Batch.BatchTooLarge
/** A batch is larger than its operation accepts. */
export type BatchTooLarge = Batch.BatchTooLarge

/**
 * An option is out of range: a negative or absurd timeout, a quantity of zero, a priority that is
 * not an integer… Names the option, the rejected value and what is accepted. Nothing was changed.
 */
export class InvalidOption extends Schema.TaggedError<InvalidOption>()("InvalidOption", {
  option: Schema.String,
  value: Schema.String,
  expected: Schema.String
}) {
  override get message(): string {
    return `${this.option}: ${this.value} is not accepted (expected ${this.expected})`
  }
}

/**
 * The caller no longer leases these messages: the lease expired and another consumer took the
 * message, a maintenance step released it, or it was already acknowledged. Nothing was changed.
 */
export class LeaseLost extends Schema.TaggedError<LeaseLost>()("LeaseLost", {
  queue: Schema.String,
  messageIds: Schema.Array(Schema.Number)
}) {
  override get message(): string {
    return `the lease on message(s) ${this.messageIds.join(", ")} of queue ${quote(this.queue)} is no longer held`
  }
}

/**
 * A send could not confirm its outcome: the message may or may not have been written. It was not
 * retried (a retry could duplicate it). Send with a `dedupKey` (mode `ignore`) to make sends retryable.
 */
export class SendOutcomeUnknown extends Schema.TaggedError<SendOutcomeUnknown>()("SendOutcomeUnknown", {
  queue: Schema.String,
  /** How many messages the send carried. */
  messages: Schema.Number,
  reason: Schema.String
}) {
  override get message(): string {
    return `the outcome of sending ${this.messages} message(s) to ${quote(this.queue)} is unknown (not retried; use a dedupKey to make the send retryable): ${this.reason}`
  }
}

/** A worker id is registered by a worker whose heartbeat is still fresh. Nothing was changed. */
export class WorkerIdInUse extends Schema.TaggedError<WorkerIdInUse>()("WorkerIdInUse", {
  workerId: Schema.String
}) {
  override get message(): string {
    return `worker id ${quote(this.workerId)} is in use by a live worker`
  }
}

/** A schedule's definition is not valid (name, cron, time zone, interval, backfill). Nothing was written. */
export class InvalidSchedule extends Schema.TaggedError<InvalidSchedule>()("InvalidSchedule", {
  reason: Schema.String
}) {
  override get message(): string {
    return `invalid schedule: ${this.reason}`
  }
}

/** No schedule has this name. Nothing was written. */
export class ScheduleNotFound extends Schema.TaggedError<ScheduleNotFound>()("ScheduleNotFound", {
  name: Schema.String
}) {
  override get message(): string {
    return `schedule ${quote(this.name)} does not exist`
  }
}

/** `create` found a schedule of this name already. It was left unchanged. */
export class ScheduleAlreadyExists extends Schema.TaggedError<ScheduleAlreadyExists>()(
  "ScheduleAlreadyExists",
  { name: Schema.String }
) {
  override get message(): string {
    return `schedule ${quote(this.name)} already exists`
  }
}

/** What the database reported, typed: a classified `DbError` or a failed transaction end. */
export const StoreCause = Schema.Union(
  DbError.DbError,
  Transaction.CommitRejected,
  Transaction.TransactionAborted,
  Transaction.CommitOutcomeUnknown,
  Transaction.SessionInUse
)

/** What the database reported. */
export type StoreCause = typeof StoreCause.Type

/**
 * The database failed the operation. Unless `cause` is `CommitOutcomeUnknown`, nothing the
 * operation wrote persists; acknowledgements whose outcome is unknown are at-least-once safe
 * (the message comes back after its visibility timeout).
 */
export class QueueStoreError extends Schema.TaggedError<QueueStoreError>()("QueueStoreError", {
  operation: Schema.String,
  cause: StoreCause
}) {
  override get message(): string {
    return `${this.operation} failed: ${this.cause._tag}: ${this.cause.message}`
  }
}

/** Every error of the queue service, as one schema (for HTTP error responses). */
export const QueueError = Schema.Union(
  InvalidQueueName,
  QueueNotFound,
  QueueAlreadyExists,
  QueueInFlight,
  MessageNotFound,
  MessageLeased,
  InvalidPayload,
  PayloadTooLarge,
  Batch.BatchTooLarge,
  InvalidOption,
  LeaseLost,
  SendOutcomeUnknown,
  WorkerIdInUse,
  QueueStoreError
)

/** Every error of the queue service. */
export type QueueError = typeof QueueError.Type
