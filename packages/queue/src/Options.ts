/**
 * The options of the queue's operations, as Schemas: each decodes what callers pass (durations as
 * any `Duration.DurationInput`) to what the operation uses (whole milliseconds), once, at the
 * operation's entrance, and fails with `InvalidOption` naming the option before anything is read or
 * written. The types of the same names are the input forms. Defaults and checks that relate two
 * options (a backoff's `max` not below its `base`) belong to the operation that applies them.
 */
import type { Effect } from "effect"
import * as Schema from "effect/Schema"
import type { ConsumerEvent } from "./Consumer.js"
import { expecting, Flag, Fraction, Int, Label, Millis, OneOf, options } from "./internal/optionSchema.js"
import {
  BackoffKind,
  DedupMode,
  GroupOnDead as GroupOnDeadLiteral,
  maxBatchSize,
  maxConcurrencyLimit,
  maxDedupKeyLength,
  maxDedupWindowMs,
  maxDelayMs,
  maxGroupConcurrency,
  maxGroupLength,
  maxMaxDeliveries,
  maxRateIntervalMs,
  maxRateLimit,
  maxRetentionMs,
  maxVisibilityTimeoutMs,
  maxWorkerIdLength,
  priorityRange,
  type QueueName
} from "./Schemas.js"

/** The longest retry backoff base or cap: 365 days. */
export const maxBackoffMs = 365 * 24 * 3_600_000

/** A message id (or an id cursor): a positive safe integer. */
export const Id = Int({ min: 1, max: Number.MAX_SAFE_INTEGER })

/** A lease length: 1 ms to 12 hours. */
export const VisibilityTimeout = Millis({ min: 1, max: maxVisibilityTimeoutMs })

/** A delay: 0 to 365 days. */
export const Delay = Millis({ min: 0, max: maxDelayMs })

/** A priority: lower is delivered first; an integer from -32768 to 32767. */
export const Priority = Int(priorityRange)

/** A worker id: 1–128 characters without control characters. */
export const WorkerId = Label(maxWorkerIdLength)

/** A rate limit: `limit` leases (1 to 1,000,000) per `interval` (1 ms to 1 day). */
export const RateLimitOptions = Schema.Struct({
  limit: Int({ min: 1, max: maxRateLimit }),
  interval: Millis({ min: 1, max: maxRateIntervalMs })
}).annotations({ message: () => "{ limit, interval } or null" })
/** A rate limit as given. */
export type RateLimitOptions = typeof RateLimitOptions.Encoded

/** Settings to create a queue with, or to change; absent ones keep their default (or current) value. */
export const SettingsOptions = options({
  /** How long `read` hides a message when the reader does not say. From 1 ms to 12 hours. */
  visibilityTimeout: Schema.optional(VisibilityTimeout),
  /** Deliveries allowed before a message is dead-lettered. From 1 to 1000. */
  maxDeliveries: Schema.optional(Int({ min: 1, max: maxMaxDeliveries })),
  /** How long archived messages (not dead letters) are kept. From 0 to 3650 days. */
  retention: Schema.optional(Millis({ min: 0, max: maxRetentionMs })),
  /**
   * At most this many of the queue's messages leased at once, by every consumer in every process
   * together (held in the database), from 1 to 100,000; `null` removes the limit. Default none.
   */
  concurrencyLimit: Schema.optional(Schema.NullOr(Int({ min: 1, max: maxConcurrencyLimit }))),
  /**
   * At most `limit` leases per `interval`, by every consumer in every process together: windows of
   * `interval` aligned to the epoch, counted in the database (BullMQ's limiter). `limit` from 1 to
   * 1,000,000, `interval` from 1 ms to 1 day; `null` removes it. Default none.
   */
  rateLimit: Schema.optional(Schema.NullOr(RateLimitOptions)),
  /**
   * Messages of one ordered group in flight at once, from 1 to 1000 (the oldest N of the group are
   * leasable, in send order). Default 1: strictly one after another.
   */
  groupConcurrency: Schema.optional(Int({ min: 1, max: maxGroupConcurrency })),
  /**
   * What a dead letter does to its ordered group: `skip` (the group goes on with its next message)
   * or `block` (the group's later messages wait until the dead letter is requeued or purged).
   * Default `skip`. Any other text is refused with `InvalidOption` (wire input is checked here).
   */
  groupOnDead: Schema.optional(
    expecting(Schema.compose(Schema.String, GroupOnDeadLiteral, { strict: false }), "skip or block")
  ),
  /**
   * Record every message's lifecycle in the event log, for `Queue.events` in any process (written
   * in the same transaction as each change; kept as long as the queue's retention). Default false:
   * a queue without it writes no events.
   */
  events: Schema.optional(Flag)
})
/** Settings as given. */
export type SettingsOptions = typeof SettingsOptions.Encoded

/** The largest payload a queue service may be configured to accept: 64 MiB. */
export const maxPayloadLimit = 64 * 1024 * 1024

/** The configuration of the queue service (`Queue.layer`). */
export const QueueConfig = options({
  /** The largest payload accepted, in UTF-8 bytes of its JSON text. Default 256 KiB; at most 64 MiB. */
  maxPayloadBytes: Schema.optional(Int({ min: 1, max: maxPayloadLimit })),
  /** Settings of queues created without them. */
  defaults: Schema.optional(SettingsOptions),
  /** Signal consumers on send (LISTEN/NOTIFY on PostgreSQL, in-process elsewhere). Default true. */
  notify: Schema.optional(Flag),
  /**
   * Spans for every operation (`keel.queue.<operation>`), each sent message carrying its trace
   * context, and each handler run in a span continuing it (`keel.queue.handle`). Default: on when
   * an OTLP endpoint is configured (`Telemetry.enabled`); off, nothing is traced and nothing costs.
   */
  tracing: Schema.optional(Flag)
})
/** The configuration of the queue service as given. */
export type QueueConfig = typeof QueueConfig.Encoded

/** Options of `Queue.events`. */
export const EventsOptions = options({
  /**
   * Start after this event id (0: every event still kept). Default: the newest event now, so only
   * what happens from here on.
   */
  since: Schema.optional(Int({ min: 0, max: Number.MAX_SAFE_INTEGER })),
  /** The longest wait between reads when no signal arrives, from 1 ms to 1 minute. Default 250 ms. */
  pollInterval: Schema.optional(Millis({ min: 1, max: 60_000 }))
})
/** Options of `Queue.events` as given. */
export type EventsOptions = typeof EventsOptions.Encoded

/** Options of `Queue.readEvents`. */
export const ReadEventsOptions = options({
  /** After this event id (0, the default: from the start of the log). */
  since: Schema.optional(Int({ min: 0, max: Number.MAX_SAFE_INTEGER })),
  /** At most this many events, from 1 to 10,000. Default 100. */
  limit: Schema.optional(Int({ min: 1, max: 10_000 }))
})
/** Options of `Queue.readEvents` as given. */
export type ReadEventsOptions = typeof ReadEventsOptions.Encoded

/**
 * A retry backoff (see `Schemas.BackoffKind`): `kind` default exponential; `base` from 0 to 365
 * days, default 1 s; `max` from `base` to 365 days, default the larger of `base` and 5 minutes;
 * `jitter` the fraction (0 to 1) the delay may be reduced by at random, default 0.25.
 */
export const BackoffOptions = options({
  kind: Schema.optional(OneOf(BackoffKind, "one of exponential, linear, fixed")),
  base: Schema.optional(Millis({ min: 0, max: maxBackoffMs })),
  max: Schema.optional(Millis({ min: 0, max: maxBackoffMs })),
  jitter: Schema.optional(Fraction({ min: 0, max: 1 }))
})
/** A retry backoff as given. */
export type BackoffOptions = typeof BackoffOptions.Encoded

const sendFields = {
  /** Invisible for this long after the send. From 0 to 365 days. Default 0. */
  delay: Schema.optional(Delay),
  /** Lower is delivered first; an integer from -32768 to 32767. Default 0. */
  priority: Schema.optional(Priority),
  /** An idempotency key: every send with the same key (while it is remembered) yields the same message. */
  dedupKey: Schema.optional(Label(maxDedupKeyLength)),
  /**
   * How long the key is held from the send that claims it, from 1 ms to 3650 days; afterwards a
   * send with the key stores a new message (a uniqueness window, as pg-boss `singletonSeconds` or
   * BullMQ's deduplication `ttl`). Default: held until the queue's retention has passed since its
   * message was done. Only with a `dedupKey`.
   */
  dedupWindow: Schema.optional(Millis({ min: 1, max: maxDedupWindowMs })),
  /** What a send with a held key does (`ignore`, `replace`, `debounce`: see `DedupMode`). Only with a `dedupKey`. */
  dedupMode: Schema.optional(OneOf(DedupMode, "one of ignore, replace, debounce")),
  /** Deliveries allowed before this message is dead-lettered, from 1 to 1000. Default: its queue's. */
  maxDeliveries: Schema.optional(Int({ min: 1, max: maxMaxDeliveries })),
  /** The delay before each retry of this message after its handler failed. Default: the consumer's backoff. */
  backoff: Schema.optional(BackoffOptions),
  /**
   * Its ordered group (1–128 characters): a message is leased only once every older message of
   * its group (by send order) is acknowledged, dead-lettered or cancelled, so a group's messages
   * run one at a time, in order, across every consumer and process; a delayed or released one holds
   * its group until it runs. Priority orders messages across groups, not within one.
   */
  group: Schema.optional(Label(maxGroupLength))
}

/** Options of one send. */
export const SendOptions = options(sendFields)
/** Options of one send as given. */
export type SendOptions = typeof SendOptions.Encoded

/** One message of a batch send: its payload (any plain JSON) and its send options. */
export const OutgoingMessage = options({ payload: Schema.Unknown, ...sendFields })
/** One message of a batch send as given. */
export type OutgoingMessage = typeof OutgoingMessage.Encoded

/** A change to a queued message (see `Queue.update`); absent fields stay as they are. */
export const UpdateOptions = options({
  /** Visible this long from now, from 0 to 365 days. */
  delay: Schema.optional(Delay),
  /** Lower is delivered first; an integer from -32768 to 32767. */
  priority: Schema.optional(Priority)
})
/** A change to a queued message as given. */
export type UpdateOptions = typeof UpdateOptions.Encoded

/** Options of `read`. */
export const ReadOptions = options({
  /** At most this many messages, from 1 to 10,000. Default 1. */
  qty: Schema.optional(Int({ min: 1, max: maxBatchSize })),
  /** How long the messages stay leased. Default: the queue's setting. */
  visibilityTimeout: Schema.optional(VisibilityTimeout),
  /** The consumer recorded on the leases. */
  workerId: Schema.optional(WorkerId)
})
/** Options of `read` as given. */
export type ReadOptions = typeof ReadOptions.Encoded

/** Options of `release`. */
export const ReleaseOptions = options({
  /** Invisible for this long before it can be read again. Default 0. */
  delay: Schema.optional(Delay),
  /**
   * Why the delivery failed. Recorded as the message's last error; a failed message that has had
   * its queue's max deliveries is dead-lettered at once instead of released.
   */
  error: Schema.optional(expecting(Schema.String, "a string"))
})
/** Options of `release` as given. */
export type ReleaseOptions = typeof ReleaseOptions.Encoded

/** A lease as given back to acknowledge it: the message id and the lease token `read` returned. */
export const LeaseInput = Schema.Struct({
  id: Id,
  lease: expecting(
    Schema.String.pipe(Schema.filter((token) => token.length >= 1 && token.length <= 64)),
    "the lease token returned by read"
  )
}).annotations({ message: () => "{ id, lease }" })

/** Options of `extendVisibility`. */
export const ExtendOptions = options({
  /** The lease lasts this long from now. Default: the queue's visibility timeout. */
  visibilityTimeout: Schema.optional(VisibilityTimeout)
})
/** Options of `extendVisibility` as given. */
export type ExtendOptions = typeof ExtendOptions.Encoded

/** Options of `listArchive`. */
export const ArchiveQuery = options({
  /** Only dead letters (true), only acknowledged messages (false), or both. */
  dead: Schema.optional(Flag),
  /** At most this many, newest first. From 1 to 10,000; default 100. */
  limit: Schema.optional(Int({ min: 1, max: maxBatchSize })),
  /** Only ids below this one (paging). */
  before: Schema.optional(Id)
})
/** Options of `listArchive` as given. */
export type ArchiveQuery = typeof ArchiveQuery.Encoded

/** Options of `requeueDead`. */
export const RequeueOptions = options({
  /** At most this many when `ids` is absent, from 1 to 10,000. Default 10,000. */
  limit: Schema.optional(Int({ min: 1, max: maxBatchSize })),
  /** These dead letters (others are ignored), at most 10,000; absent: the oldest `limit` dead letters. */
  ids: Schema.optional(Schema.Array(Id))
})
/** Options of `requeueDead` as given. */
export type RequeueOptions = typeof RequeueOptions.Encoded

/** Options of `listMessages`. */
export const ListMessagesOptions = options({
  /** `queued` (visible now, the default), `delayed`, or `leased` (lease not expired): as `MessageInfo.state`. */
  state: Schema.optional(
    OneOf(Schema.Literal("queued", "delayed", "leased"), "one of queued, delayed, leased")
  ),
  /** Only ids above this one (paging). */
  after: Schema.optional(Id),
  /** At most this many, from 1 to 1,000. Default 100. */
  limit: Schema.optional(Int({ min: 1, max: 1000 }))
})
/** Options of `listMessages` as given. */
export type ListMessagesOptions = typeof ListMessagesOptions.Encoded

/** Options of `registerWorker`. */
export const WorkerOptions = options({
  /** A stable id (e.g. host and slot); default a random UUID. A live worker's id is refused. */
  workerId: Schema.optional(WorkerId),
  /** The queue the worker consumes (deleting the queue deregisters it). */
  queue: Schema.optional(Schema.String),
  /** How often the heartbeat is written, from 10 ms to 10 minutes. Default 5 s. */
  heartbeatInterval: Schema.optional(Millis({ min: 10, max: 10 * 60_000 })),
  /**
   * After this long without a heartbeat the worker is stale: maintenance releases its leases. From
   * 20 ms to 12 hours and longer than the heartbeat interval. Default the longer of 30 s and three
   * heartbeats.
   */
  workerTimeout: Schema.optional(Millis({ min: 20, max: maxVisibilityTimeoutMs }))
})
/** Options of `registerWorker` as given. */
export type WorkerOptions = typeof WorkerOptions.Encoded

/** A registered worker: its heartbeat runs, and its leases are released when its scope closes. */
export interface RegisteredWorker {
  readonly id: string
  readonly queue: QueueName | null
}

/** The options of `consume` that are data (all but `onEvent`). */
export const ConsumeSettings = options({
  /** Handlers running at once, from 1 to 1000. Default 1. */
  concurrency: Schema.optional(Int({ min: 1, max: 1000 })),
  /**
   * The most messages leased ahead of free handler slots, from 0 to 1000 (used only while handlers
   * are fast, see the module comment). Default 32; 0 leases only for free slots.
   */
  prefetch: Schema.optional(Int({ min: 0, max: 1000 })),
  /** The longest wait between reads when no signal arrives, from 1 ms to 1 hour. Default 1 s. */
  pollInterval: Schema.optional(Millis({ min: 1, max: 3_600_000 })),
  /** How often this consumer runs a maintenance pass, from 10 ms to 1 day. Default 30 s. */
  maintenanceInterval: Schema.optional(Millis({ min: 10, max: 24 * 3_600_000 })),
  /** On shutdown, how long in-flight handlers may run before they are interrupted, up to 1 hour. Default 10 s. */
  shutdownTimeout: Schema.optional(Millis({ min: 0, max: 3_600_000 })),
  /** A handler running longer (1 ms to 7 days) fails (and its message is released with backoff). Default: no limit. */
  handlerTimeout: Schema.optional(Millis({ min: 1, max: 7 * 24 * 3_600_000 })),
  /**
   * Delay before a failed message is retried: `initial` (up to 1 day, default 1 s) × 2^(deliveries − 1),
   * at most `max` (from `initial` to 365 days, default the larger of `initial` and 5 minutes), jittered.
   */
  backoff: Schema.optional(
    options({
      initial: Schema.optional(Millis({ min: 0, max: 24 * 3_600_000 })),
      max: Schema.optional(Millis({ min: 0, max: maxBackoffMs }))
    })
  ),
  /** What happens to a message whose handler succeeded. Default `archive`. */
  onSuccess: Schema.optional(OneOf(Schema.Literal("archive", "delete"), '"archive" or "delete"')),
  /** Lease length of each read. Default: the queue's visibility timeout. */
  visibilityTimeout: Schema.optional(VisibilityTimeout)
})

/** Options of `consume`. */
export type ConsumeOptions = typeof ConsumeSettings.Encoded &
  Pick<WorkerOptions, "workerId" | "heartbeatInterval" | "workerTimeout"> & {
    /** Observes each step of each delivery (for logs, traces, tests); runs inline, so keep it quick. */
    readonly onEvent?: ((event: ConsumerEvent) => Effect.Effect<void>) | undefined
  }
