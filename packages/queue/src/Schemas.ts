/**
 * The queue's data, as Schemas shared by the service, the CLI and the HTTP API: queue names,
 * message ids, leases, payloads, settings, metrics, dead letters and workers. Durations cross the
 * wire as milliseconds and timestamps as epoch milliseconds.
 */
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { InvalidQueueName } from "./QueueError.js"

const queueNamePattern = /^[a-z0-9_-]{1,64}$/

/** A valid queue name: 1–64 characters, each a lowercase letter, a digit, `_` or `-`. */
export const QueueName = Schema.String.pipe(Schema.pattern(queueNamePattern), Schema.brand("QueueName"))

/** A valid queue name. */
export type QueueName = typeof QueueName.Type

/** Checks a queue name; anything but 1–64 of `a-z0-9_-` is an `InvalidQueueName`. */
export const parseQueueName = (name: string): Either.Either<QueueName, InvalidQueueName> => {
  if (typeof name !== "string")
    return Either.left(new InvalidQueueName({ name: String(name), reason: "not a string" }))
  if (name.length === 0) return Either.left(new InvalidQueueName({ name, reason: "it is empty" }))
  if (name.length > 64)
    return Either.left(new InvalidQueueName({ name, reason: "it is longer than 64 characters" }))
  if (!queueNamePattern.test(name)) {
    return Either.left(
      new InvalidQueueName({ name, reason: "only lowercase letters, digits, '_' and '-' are allowed" })
    )
  }
  return Either.right(QueueName.make(name, true))
}

/** A message's id: unique across every queue of the database, never reused (archive included). */
export const MessageId = Schema.Int.pipe(Schema.positive(), Schema.brand("MessageId"))

/** A message's id. */
export type MessageId = typeof MessageId.Type

/** The token of one lease: `read` sets a fresh one; every later read of the message replaces it. */
export const LeaseToken = Schema.String.pipe(
  Schema.minLength(1),
  Schema.maxLength(64),
  Schema.brand("LeaseToken")
)

/** The token of one lease. */
export type LeaseToken = typeof LeaseToken.Type

/** What proves a consumer still leases a message: its id and the token `read` returned. */
export const Lease = Schema.Struct({ id: MessageId, lease: LeaseToken })

/** What proves a consumer still leases a message. */
export interface Lease {
  readonly id: number
  readonly lease: string
}

/** Epoch milliseconds on the wire, `DateTime.Utc` in code. */
export const Timestamp = Schema.DateTimeUtcFromNumber

/** The longest visibility timeout (and lease extension): 12 hours, as on SQS. */
export const maxVisibilityTimeoutMs = 12 * 60 * 60 * 1000
/** The longest delay before a sent or released message becomes visible: 365 days. */
export const maxDelayMs = 365 * 24 * 60 * 60 * 1000
/** The longest retention of archived messages: 3650 days. */
export const maxRetentionMs = 3650 * 24 * 60 * 60 * 1000
/** The most deliveries a queue may allow before dead-lettering. */
export const maxMaxDeliveries = 1000
/** Priorities run from -32768 to 32767; lower values are delivered first (as in River and graphile-worker). */
export const priorityRange = { min: -32768, max: 32767 } as const
/** The most messages one batch operation (send, read, acknowledge, requeue) accepts. */
export const maxBatchSize = 10_000
/** The longest error text recorded on a failed delivery; longer texts are truncated. */
export const maxErrorLength = 4096

/** The last error of a message dead-lettered without one: it was never acknowledged in time. */
export const exhausted = { prefix: "not acknowledged after ", suffix: " deliveries" } as const

/** The error recorded for a message dead-lettered after `maxDeliveries` unacknowledged deliveries. */
export const exhaustedError = (maxDeliveries: number): string =>
  `${exhausted.prefix}${maxDeliveries}${exhausted.suffix}`

/** What a dead letter does to its ordered group (see `SettingsOptions.groupOnDead`). */
export const GroupOnDead = Schema.Literal("skip", "block")

/** What a dead letter does to its ordered group. */
export type GroupOnDead = typeof GroupOnDead.Type

/** A rate limit as stored: `limit` leases per `interval`. */
export const RateLimit = Schema.Struct({ limit: Schema.Int, interval: Schema.DurationFromMillis })

/** The most messages a concurrency limit allows in flight. */
export const maxConcurrencyLimit = 100_000
/** The most leases a rate limit allows per interval. */
export const maxRateLimit = 1_000_000
/** The longest rate-limit interval: one day. */
export const maxRateIntervalMs = 24 * 60 * 60 * 1000
/** The most messages of one group in flight. */
export const maxGroupConcurrency = 1000

/** Per-queue settings. */
export const QueueSettings = Schema.Struct({
  /** How long a `read` hides a message when the reader does not say. */
  visibilityTimeout: Schema.DurationFromMillis,
  /** Deliveries allowed before the message is moved to the dead letters. */
  maxDeliveries: Schema.Int,
  /** How long archived (not dead) messages are kept before maintenance purges them. */
  retention: Schema.DurationFromMillis,
  /** At most this many messages leased at once across every consumer (null: no limit). */
  concurrencyLimit: Schema.NullOr(Schema.Int),
  /** At most `limit` leases per `interval` across every consumer (null: no limit). */
  rateLimit: Schema.NullOr(RateLimit),
  /** Messages of one ordered group in flight at once. */
  groupConcurrency: Schema.Int,
  /** What a dead letter does to its group. */
  groupOnDead: GroupOnDead,
  /** Every message's lifecycle is recorded in the event log (`Queue.events`). */
  events: Schema.Boolean
})

/** Per-queue settings. */
export type QueueSettings = typeof QueueSettings.Type

/**
 * Settings to create a queue with or to change: each is optional (defaults, or unchanged). Durations
 * are milliseconds on the wire; in code any `Duration.DurationInput`.
 */
export const SettingsInput = Schema.Struct({
  visibilityTimeout: Schema.optional(Schema.Number),
  maxDeliveries: Schema.optional(Schema.Number),
  retention: Schema.optional(Schema.Number),
  concurrencyLimit: Schema.optional(Schema.NullOr(Schema.Number)),
  rateLimit: Schema.optional(Schema.NullOr(Schema.Struct({ limit: Schema.Number, interval: Schema.Number }))),
  groupConcurrency: Schema.optional(Schema.Number),
  groupOnDead: Schema.optional(Schema.String),
  events: Schema.optional(Schema.Boolean)
})

/**
 * What happened to a message, as the event log records it: `sent` (also when a dead letter is
 * requeued), `leased`, `released` (its handler failed or its lease was given back; `error` says
 * why), `acknowledged` (archived), `deleted` (acknowledged without archiving, or purged), `dead`
 * (dead-lettered; `error`), `cancelled`.
 */
export const EventType = Schema.Literal(
  "sent",
  "leased",
  "released",
  "acknowledged",
  "deleted",
  "dead",
  "cancelled"
)

/** What happened to a message. */
export type EventType = typeof EventType.Type

/** One event of the log (`Queue.events`): its position `id` (resume after it with `since`). */
export class QueueEvent extends Schema.Class<QueueEvent>("QueueEvent")({
  id: Schema.Int,
  queue: QueueName,
  messageId: MessageId,
  type: EventType,
  /** When it was recorded, by the database's clock. */
  at: Timestamp,
  error: Schema.NullOr(Schema.String)
}) {}

/** A queue and its settings. */
export class QueueInfo extends Schema.Class<QueueInfo>("QueueInfo")({
  name: QueueName,
  ...QueueSettings.fields,
  createdAt: Timestamp,
  updatedAt: Timestamp
}) {}

/**
 * What a send does when its `dedupKey` is already held (within its window):
 * - `ignore`: nothing; the send yields the held message's id.
 * - `replace`: the held message, while it is queued and not leased, takes the new payload and
 *   priority (its deliveries start over; its availability is kept); a held message that is leased or
 *   done is left alone and a new message is stored, which the key then holds.
 * - `debounce`: as `replace`, and the message's availability moves to the send's time plus its
 *   `delay`: it runs once the sends have stopped for `delay`.
 */
export const DedupMode = Schema.Literal("ignore", "replace", "debounce")

/** What a send does when its `dedupKey` is already held. */
export type DedupMode = typeof DedupMode.Type

/** The longest dedup window: as long as the longest retention, 3650 days. */
export const maxDedupWindowMs = 3650 * 24 * 60 * 60 * 1000

/**
 * How a retry delay grows with the deliveries so far (`n`, the failed one included):
 * `exponential` base × 2^(n−1), `linear` base × n, `fixed` base; each capped at `max`.
 */
export const BackoffKind = Schema.Literal("exponential", "linear", "fixed")

/** How a retry delay grows with the deliveries so far. */
export type BackoffKind = typeof BackoffKind.Type

/** A resolved retry backoff; `base` and `max` are milliseconds. */
export const Backoff = Schema.Struct({
  kind: BackoffKind,
  base: Schema.Number,
  max: Schema.Number,
  /** The delay is reduced by up to this fraction at random (0: exact, 0.25: 75–100 % of it). */
  jitter: Schema.Number
})

/** A resolved retry backoff: durations in milliseconds. */
export type Backoff = typeof Backoff.Type

/** A backoff as a send gives it on the wire: each field optional, durations in milliseconds. */
export const BackoffInput = Schema.Struct({
  kind: Schema.optional(BackoffKind),
  base: Schema.optional(Schema.Number),
  max: Schema.optional(Schema.Number),
  jitter: Schema.optional(Schema.Number)
})

/** The options of one send; on the wire `delay` and `dedupWindow` are milliseconds. */
export const SendOptions = Schema.Struct({
  /** How long the message stays invisible after the send. Default 0. */
  delay: Schema.optional(Schema.Number),
  /** Lower is delivered first. Default 0. */
  priority: Schema.optional(Schema.Number),
  /** An idempotency key: a second send with the same key returns the first message's id. */
  dedupKey: Schema.optional(Schema.String),
  /**
   * How long the key is held from the send that claimed it; after that a send with the key stores
   * a new message. Default: until the queue's retention has passed since its message was done.
   */
  dedupWindow: Schema.optional(Schema.Number),
  /** What a send with a held key does. Default `ignore`. */
  dedupMode: Schema.optional(DedupMode),
  /** Deliveries allowed before this message is dead-lettered. Default: its queue's setting. */
  maxDeliveries: Schema.optional(Schema.Number),
  /** The delay before each retry of this message after a failure. Default: the consumer's. */
  backoff: Schema.optional(BackoffInput),
  /** Its ordered group: a group's messages are leased one at a time, oldest first. */
  group: Schema.optional(Schema.String)
})

/** One message of a batch send. */
export const OutgoingMessage = Schema.Struct({ payload: Schema.Unknown, ...SendOptions.fields })

/** The options of `read`; on the wire `visibilityTimeout` is milliseconds. */
export const ReadOptions = Schema.Struct({
  /** At most this many messages. Default 1. */
  qty: Schema.optional(Schema.Number),
  /** How long the messages stay leased. Default: the queue's setting. */
  visibilityTimeout: Schema.optional(Schema.Number),
  /** The consumer recorded on the lease (a registered worker's leases are released when it goes stale). */
  workerId: Schema.optional(Schema.String)
})

/** A message leased by `read`. Acknowledge it with its `id` and `lease`. */
export class Leased extends Schema.Class<Leased>("Leased")({
  id: MessageId,
  queue: QueueName,
  /** The JSON value that was sent. */
  payload: Schema.Unknown,
  priority: Schema.Int,
  /** Deliveries so far, this one included. */
  deliveries: Schema.Int,
  enqueuedAt: Timestamp,
  leasedAt: Timestamp,
  /** When the lease expires and the message becomes visible again (unless extended or acknowledged). */
  visibleAt: Timestamp,
  lease: LeaseToken,
  workerId: Schema.NullOr(Schema.String),
  /** The error reported by the previous delivery's consumer, if it failed. */
  lastError: Schema.NullOr(Schema.String),
  /** Deliveries allowed before it is dead-lettered: its own, or its queue's. */
  maxDeliveries: Schema.Int,
  /** Its own retry backoff, sent with it; null: the consumer's applies. */
  backoff: Schema.NullOr(Backoff),
  /** Its ordered group, or null. */
  group: Schema.NullOr(Schema.String),
  /** The trace context it was sent in (W3C `traceparent`), when the sender traced; its handler's span continues it. */
  trace: Schema.optional(Schema.NullOr(Schema.String))
}) {}

/**
 * What `cancel` did: the message was queued and is now archived as cancelled (`cancelled`), or it
 * was leased and is archived as cancelled with its lease revoked (`cancelledRunning`): its
 * consumer's handler is interrupted at its next lease check and its result is not acknowledged.
 */
export const CancelOutcome = Schema.Literal("cancelled", "cancelledRunning")

/** What `cancel` did. */
export type CancelOutcome = typeof CancelOutcome.Type

/** Where a message is: visible to readers (`queued`), waiting for its time (`delayed`), or `leased`. */
export const MessageState = Schema.Literal("queued", "delayed", "leased")

/** Where a message is. */
export type MessageState = typeof MessageState.Type

/** The largest progress value a handler may report, in UTF-8 bytes of its JSON text. */
export const maxProgressBytes = 4096

/** A message as it is now, by id (`Queue.getMessage`). */
export class MessageInfo extends Schema.Class<MessageInfo>("MessageInfo")({
  id: MessageId,
  queue: QueueName,
  payload: Schema.Unknown,
  priority: Schema.Int,
  state: MessageState,
  /** Deliveries so far. */
  deliveries: Schema.Int,
  /** Deliveries allowed before it is dead-lettered: its own, or its queue's. */
  maxDeliveries: Schema.Int,
  enqueuedAt: Timestamp,
  /** When it becomes visible (delayed), became visible (queued), or its lease ends (leased). */
  availableAt: Timestamp,
  lastError: Schema.NullOr(Schema.String),
  /** The progress its handler last reported (any delivery), or null. */
  progress: Schema.Unknown,
  backoff: Schema.NullOr(Backoff),
  group: Schema.NullOr(Schema.String)
}) {}

/** A change to a queued message; on the wire `delay` is milliseconds. */
export const MessageUpdate = Schema.Struct({
  /** Visible this long from now. */
  delay: Schema.optional(Schema.Number),
  /** Lower is delivered first. */
  priority: Schema.optional(Schema.Number)
})

/** The options of `release`; on the wire `delay` is milliseconds. */
export const ReleaseOptions = Schema.Struct({
  /** How long the message stays invisible before it can be read again. Default 0. */
  delay: Schema.optional(Schema.Number),
  /**
   * The failure that made the consumer give up on this delivery. A released message that has had
   * its queue's max deliveries and carries an error is dead-lettered at once.
   */
  error: Schema.optional(Schema.String)
})

/** What `release` did with a message: made it visible again (after the delay), or dead-lettered it. */
export const ReleaseOutcome = Schema.Literal("released", "dead")

/** What `release` did with a message. */
export type ReleaseOutcome = typeof ReleaseOutcome.Type

/** A message in the archive: acknowledged with `archive`, or dead-lettered (`dead`). */
export class ArchivedMessage extends Schema.Class<ArchivedMessage>("ArchivedMessage")({
  id: MessageId,
  queue: QueueName,
  payload: Schema.Unknown,
  priority: Schema.Int,
  deliveries: Schema.Int,
  enqueuedAt: Timestamp,
  archivedAt: Timestamp,
  dead: Schema.Boolean,
  /** Cancelled (`cancel`) rather than acknowledged. */
  cancelled: Schema.Boolean,
  lastError: Schema.NullOr(Schema.String)
}) {}

/** Options of listing the archive: newest first, paged by id. */
export const ArchiveQuery = Schema.Struct({
  /** Only dead letters (true), only acknowledged messages (false), or both (absent). */
  dead: Schema.optional(Schema.Boolean),
  /** At most this many. Default 100. */
  limit: Schema.optional(Schema.Number),
  /** Only messages with a smaller id (the last id of the previous page). */
  before: Schema.optional(Schema.Number)
})

/** A queue's counts at one instant. */
export class QueueMetrics extends Schema.Class<QueueMetrics>("QueueMetrics")({
  queue: QueueName,
  /** Visible now: ready to be read (expired leases included). */
  depth: Schema.Int,
  /** Leased, lease not expired. */
  inFlight: Schema.Int,
  /** Sent or released with a delay that has not passed, not leased. */
  delayed: Schema.Int,
  /** Age of the oldest message still in the queue (any state), in milliseconds; null when empty. */
  oldestMessageAgeMs: Schema.NullOr(Schema.Number),
  /** Acknowledged with `archive`, within retention. */
  archived: Schema.Int,
  /** Dead letters. */
  dead: Schema.Int,
  measuredAt: Timestamp
}) {}

/** A registered worker. */
export class Worker extends Schema.Class<Worker>("Worker")({
  id: Schema.String,
  /** The queue it consumes, when it registered for one. */
  queue: Schema.NullOr(QueueName),
  host: Schema.String,
  pid: Schema.Int,
  startedAt: Timestamp,
  heartbeatAt: Timestamp,
  /** Stale after this long without a heartbeat (maintenance then releases its leases). */
  timeout: Schema.DurationFromMillis,
  /** Messages it holds a live lease on now. */
  inFlight: Schema.Int
}) {}

/** What one maintenance pass did. */
export class MaintenanceReport extends Schema.Class<MaintenanceReport>("MaintenanceReport")({
  /** Workers whose heartbeat was stale, deregistered. */
  staleWorkers: Schema.Array(Schema.String),
  /** Leases of those workers, released (the messages are visible again). */
  releasedLeases: Schema.Int,
  /** Archived messages past their queue's retention, deleted. */
  purgedArchived: Schema.Int,
  /** Idempotency keys past retention whose message is gone, forgotten. */
  purgedKeys: Schema.Int,
  /** Events of the log past their queue's retention (or of deleted queues), deleted. */
  purgedEvents: Schema.Int
}) {}

/** What deleting or purging removed. */
export class Removed extends Schema.Class<Removed>("Removed")({
  messages: Schema.Int,
  archived: Schema.Int
}) {}

export {
  describeInput,
  encodePayload,
  maxDedupKeyLength,
  maxGroupLength,
  maxWorkerIdLength,
  parsePayload,
  validateDedupKey,
  validateGroup,
  validateWorkerId
} from "./Input.js"
