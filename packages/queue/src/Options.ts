/**
 * The options of the queue's operations, as callers pass them (durations as any
 * `Duration.DurationInput`). Each operation checks its options first and fails with
 * `InvalidOption`, naming the option, before it reads or writes anything.
 */
import type { Duration, Effect } from "effect"
import type { ConsumerEvent } from "./Consumer.js"
import type { BackoffKind, DedupMode, GroupOnDead, QueueName } from "./Message.js"

/** Settings to create a queue with, or to change; absent ones keep their default (or current) value. */
export interface SettingsOptions {
  /** How long `read` hides a message when the reader does not say. From 1 ms to 12 hours. */
  readonly visibilityTimeout?: Duration.DurationInput | undefined
  /** Deliveries allowed before a message is dead-lettered. From 1 to 1000. */
  readonly maxDeliveries?: number | undefined
  /** How long archived messages (not dead letters) are kept. From 0 to 3650 days. */
  readonly retention?: Duration.DurationInput | undefined
  /**
   * At most this many of the queue's messages leased at once, by every consumer in every process
   * together (held in the database), from 1 to 100,000; `null` removes the limit. Default none.
   */
  readonly concurrencyLimit?: number | null | undefined
  /**
   * At most `limit` leases per `interval`, by every consumer in every process together: windows of
   * `interval` aligned to the epoch, counted in the database (BullMQ's limiter). `limit` from 1 to
   * 1,000,000, `interval` from 1 ms to 1 day; `null` removes it. Default none.
   */
  readonly rateLimit?: RateLimitOptions | null | undefined
  /**
   * Messages of one ordered group in flight at once, from 1 to 1000 (the oldest N of the group are
   * leasable, in send order). Default 1: strictly one after another.
   */
  readonly groupConcurrency?: number | undefined
  /**
   * What a dead letter does to its ordered group: `skip` (the group goes on with its next message)
   * or `block` (the group's later messages wait until the dead letter is requeued or purged).
   * Default `skip`. Any other text is refused with `InvalidOption` (wire input is checked here).
   */
  readonly groupOnDead?: GroupOnDead | (string & {}) | undefined
  /**
   * Record every message's lifecycle in the event log, for `Queue.events` in any process (written
   * in the same transaction as each change; kept as long as the queue's retention). Default false:
   * a queue without it writes no events.
   */
  readonly events?: boolean | undefined
}

/** Options of `Queue.events`. */
export interface EventsOptions {
  /**
   * Start after this event id (0: every event still kept). Default: the newest event now, so only
   * what happens from here on.
   */
  readonly since?: number | undefined
  /** The longest wait between reads when no signal arrives, from 1 ms to 1 minute. Default 250 ms. */
  readonly pollInterval?: Duration.DurationInput | undefined
}

/** A rate limit: `limit` leases per `interval`. */
export interface RateLimitOptions {
  readonly limit: number
  readonly interval: Duration.DurationInput
}

/** Options of one send. */
export interface SendOptions {
  /** Invisible for this long after the send. From 0 to 365 days. Default 0. */
  readonly delay?: Duration.DurationInput | undefined
  /** Lower is delivered first; an integer from -32768 to 32767. Default 0. */
  readonly priority?: number | undefined
  /** An idempotency key: every send with the same key (while it is remembered) yields the same message. */
  readonly dedupKey?: string | undefined
  /**
   * How long the key is held from the send that claims it, from 1 ms to 3650 days; afterwards a
   * send with the key stores a new message (a uniqueness window, as pg-boss `singletonSeconds` or
   * BullMQ's deduplication `ttl`). Default: held until the queue's retention has passed since its
   * message was done. Only with a `dedupKey`.
   */
  readonly dedupWindow?: Duration.DurationInput | undefined
  /** What a send with a held key does (`ignore`, `replace`, `debounce`: see `DedupMode`). Only with a `dedupKey`. */
  readonly dedupMode?: DedupMode | undefined
  /** Deliveries allowed before this message is dead-lettered, from 1 to 1000. Default: its queue's. */
  readonly maxDeliveries?: number | undefined
  /** The delay before each retry of this message after its handler failed. Default: the consumer's backoff. */
  readonly backoff?: BackoffOptions | undefined
  /**
   * Its ordered group (1–128 characters): a message is leased only once every older message of
   * its group (by send order) is acknowledged, dead-lettered or cancelled, so a group's messages
   * run one at a time, in order, across every consumer and process; a delayed or released one holds
   * its group until it runs. Priority orders messages across groups, not within one.
   */
  readonly group?: string | undefined
}

/**
 * A retry backoff (see `Message.BackoffKind`): `kind` default exponential; `base` from 0 to 365
 * days, default 1 s; `max` from `base` to 365 days, default the larger of `base` and 5 minutes;
 * `jitter` the fraction (0 to 1) the delay may be reduced by at random, default 0.25.
 */
export interface BackoffOptions {
  readonly kind?: BackoffKind | undefined
  readonly base?: Duration.DurationInput | undefined
  readonly max?: Duration.DurationInput | undefined
  readonly jitter?: number | undefined
}

/** One message of a batch send. */
export interface OutgoingMessage extends SendOptions {
  readonly payload: unknown
}

/** A change to a queued message (see `Queue.update`); absent fields stay as they are. */
export interface UpdateOptions {
  /** Visible this long from now, from 0 to 365 days. */
  readonly delay?: Duration.DurationInput | undefined
  /** Lower is delivered first; an integer from -32768 to 32767. */
  readonly priority?: number | undefined
}

/** Options of `read`. */
export interface ReadOptions {
  /** At most this many messages, from 1 to 10,000. Default 1. */
  readonly qty?: number | undefined
  /** How long the messages stay leased. Default: the queue's setting. */
  readonly visibilityTimeout?: Duration.DurationInput | undefined
  /** The consumer recorded on the leases. */
  readonly workerId?: string | undefined
}

/** Options of `release`. */
export interface ReleaseOptions {
  /** Invisible for this long before it can be read again. Default 0. */
  readonly delay?: Duration.DurationInput | undefined
  /**
   * Why the delivery failed. Recorded as the message's last error; a failed message that has had
   * its queue's max deliveries is dead-lettered at once instead of released.
   */
  readonly error?: string | undefined
}

/** Options of `extendVisibility`. */
export interface ExtendOptions {
  /** The lease lasts this long from now. Default: the queue's visibility timeout. */
  readonly visibilityTimeout?: Duration.DurationInput | undefined
}

/** Options of `listArchive`. */
export interface ArchiveQuery {
  /** Only dead letters (true), only acknowledged messages (false), or both. */
  readonly dead?: boolean | undefined
  /** At most this many, newest first. From 1 to 10,000; default 100. */
  readonly limit?: number | undefined
  /** Only ids below this one (paging). */
  readonly before?: number | undefined
}

/** Options of `requeueDead`. */
export interface RequeueOptions {
  /** These dead letters (others are ignored); absent: the oldest `limit` dead letters. */
  readonly ids?: ReadonlyArray<number> | undefined
  /** At most this many when `ids` is absent. Default 10,000. */
  readonly limit?: number | undefined
}

/** Options of `registerWorker`. */
export interface WorkerOptions {
  /** The queue the worker consumes (deleting the queue deregisters it). */
  readonly queue?: string | undefined
  /** A stable id (e.g. host and slot); default a random UUID. A live worker's id is refused. */
  readonly workerId?: string | undefined
  /** How often the heartbeat is written. Default 5 s. */
  readonly heartbeatInterval?: Duration.DurationInput | undefined
  /** After this long without a heartbeat the worker is stale: maintenance releases its leases. Default 30 s. */
  readonly workerTimeout?: Duration.DurationInput | undefined
}

/** A registered worker: its heartbeat runs, and its leases are released when its scope closes. */
export interface RegisteredWorker {
  readonly id: string
  readonly queue: QueueName | null
}

/** Options of `consume`. */
export interface ConsumeOptions {
  /** Handlers running at once, from 1 to 1000. Default 1. */
  readonly concurrency?: number | undefined
  /**
   * The most messages leased ahead of free handler slots, from 0 to 1000 (used only while handlers
   * are fast, see the module comment). Default 32; 0 leases only for free slots.
   */
  readonly prefetch?: number | undefined
  /** Lease length of each read. Default: the queue's visibility timeout. */
  readonly visibilityTimeout?: Duration.DurationInput | undefined
  /** The longest wait between reads when no signal arrives, from 1 ms to 1 hour. Default 1 s. */
  readonly pollInterval?: Duration.DurationInput | undefined
  /** A stable worker id; default a random UUID. */
  readonly workerId?: string | undefined
  /** Heartbeat period. Default 5 s. */
  readonly heartbeatInterval?: Duration.DurationInput | undefined
  /** Without a heartbeat this long, the worker is stale and its leases are released. Default 30 s. */
  readonly workerTimeout?: Duration.DurationInput | undefined
  /** How often this consumer runs a maintenance pass. Default 30 s. */
  readonly maintenanceInterval?: Duration.DurationInput | undefined
  /** On shutdown, how long in-flight handlers may run before they are interrupted. Default 10 s. */
  readonly shutdownTimeout?: Duration.DurationInput | undefined
  /** A handler running longer fails (and its message is released with backoff). Default: no limit. */
  readonly handlerTimeout?: Duration.DurationInput | undefined
  /** Delay before a failed message is retried: `initial` × 2^(deliveries − 1), at most `max`, jittered. */
  readonly backoff?:
    | {
        readonly initial?: Duration.DurationInput | undefined
        readonly max?: Duration.DurationInput | undefined
      }
    | undefined
  /** What happens to a message whose handler succeeded. Default `archive`. */
  readonly onSuccess?: "archive" | "delete" | undefined
  /** Observes each step of each delivery (for logs, traces, tests); runs inline, so keep it quick. */
  readonly onEvent?: ((event: ConsumerEvent) => Effect.Effect<void>) | undefined
}
