/**
 * The queue's storage seam: one method per storage operation, each atomic, with typed rows. The
 * queue's semantics (`internal/*.ts`: validation, outcomes, metrics) run over it; `SqlQueueStore`
 * implements it on the four SQL backends and `layerMemory` in memory, for tests of the semantics
 * (consumers, CLI, HTTP) that need no database.
 *
 * Every operation that names a queue answers `undefined` (or `QueueMissing`) when there is no such
 * queue, and changes nothing then. Times are epoch milliseconds, durations milliseconds.
 */

import type { Effect, Stream } from "effect"
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import * as Memory from "./internal/memory.js"
import type { QueueStoreError } from "./QueueError.js"
import type { Backoff, DedupMode, EventType } from "./Schemas.js"

/** A queue and its settings. */
export interface QueueRow extends Settings {
  readonly id: number
  readonly name: string
  readonly createdAt: number
  readonly updatedAt: number
}

/** The settings of a queue. */
export interface Settings {
  readonly visibilityTimeoutMs: number
  readonly maxDeliveries: number
  readonly retentionMs: number
  /** Messages leased at once across every consumer (null: no limit). */
  readonly concurrencyLimit: number | null
  /** Leases per `rateIntervalMs` window (both null: no limit). */
  readonly rateLimit: number | null
  readonly rateIntervalMs: number | null
  /** Messages of one group in flight at once. */
  readonly groupConcurrency: number
  /** A dead letter blocks its group's later messages (true) or they go on (false). */
  readonly groupBlockOnDead: boolean
  /** Every message's lifecycle is recorded in the event log. */
  readonly events: boolean
}

/** One recorded event (see `Queue.events`). */
export interface EventRow {
  readonly id: number
  readonly queue: string
  readonly messageId: number
  readonly type: EventType
  /** Epoch ms, by the database's clock (the memory store's: the operation's time). */
  readonly at: number
  readonly error: string | null
}

/** A message to store. */
export interface NewMessage {
  /** The payload's JSON text. */
  readonly payload: string
  readonly priority: number
  /** Invisible for this long after `now`. */
  readonly delayMs: number
  /** An idempotency key: a message with a key already held is not stored again (see `dedupMode`). */
  readonly dedupKey: string | undefined
  /** With a key: how long it is held from its claim; undefined: until retention after its message is done. */
  readonly dedupWindowMs: number | undefined
  /** With a held key: leave the held message (`ignore`), or replace it while it is queued and not leased. */
  readonly dedupMode: DedupMode
  /** Deliveries allowed before it is dead-lettered; undefined: its queue's setting. */
  readonly maxDeliveries: number | undefined
  /** Its own retry backoff; undefined: the consumer's. */
  readonly backoff: Backoff | undefined
  /** Its ordered group: leased only once every older message of the group is gone. */
  readonly group: string | undefined
  /** The trace context it was sent in (W3C `traceparent`), when tracing is on. */
  readonly trace?: string | undefined
}

/** What a send stored: the queue's id and, per message, its id (an existing key's message for a known key). */
export interface Sent {
  readonly queueId: number
  readonly ids: ReadonlyArray<number>
}

/** A lease to take. */
export interface LeaseRequest {
  readonly qty: number
  /** Lease length; the queue's visibility timeout when undefined. */
  readonly visibilityMs: number | undefined
  readonly workerId: string | null
  /** The token of every lease taken by this request. */
  readonly token: string
  readonly now: number
}

/** A message as it was leased. */
export interface LeasedRow {
  readonly id: number
  readonly payload: string
  readonly priority: number
  readonly enqueuedAt: number
  /** Deliveries so far, this one included. */
  readonly deliveries: number
  readonly visibleAt: number
  readonly lastError: string | null
  /** Deliveries allowed before it is dead-lettered: its own, or its queue's. */
  readonly maxDeliveries: number
  /** Its own retry backoff (null: the consumer's). */
  readonly backoff: Backoff | null
  /** Its ordered group, or null. */
  readonly group: string | null
  /** The trace context it was sent in, or null. */
  readonly trace: string | null
}

/** What a lease request took: messages by priority, then visible-since, then id; and how many it dead-lettered. */
export interface Leases {
  readonly leased: ReadonlyArray<LeasedRow>
  readonly dead: number
  /**
   * When fewer were leased than asked because the queue's rate limit is spent: when its next
   * window opens (epoch ms). Absent otherwise.
   */
  readonly throttledUntil?: number | undefined
}

/** A lease the caller claims to hold. */
export interface HeldLease {
  readonly id: number
  readonly lease: string
}

/** What to do with leased messages. */
export type Settlement =
  | { readonly _tag: "Delete" }
  | { readonly _tag: "Archive" }
  /** The lease lasts `visibilityMs` (default: the queue's visibility timeout) from now. */
  | { readonly _tag: "Extend"; readonly visibilityMs: number | undefined }
  /**
   * The message is visible again after `delayMs`; with an `error`, one that has had its queue's max
   * deliveries is dead-lettered instead.
   */
  | { readonly _tag: "Release"; readonly delayMs: number; readonly error: string | null }

/** A settlement request. */
export interface SettleRequest {
  readonly leases: ReadonlyArray<HeldLease>
  readonly settlement: Settlement
  /** True: all leases or none (any lost lease changes nothing). False: each held lease alone. */
  readonly atomic: boolean
  readonly now: number
}

/** What a settlement did: the ids of lost leases (none acted on when atomic), the released ones dead-lettered, the new deadline of extended ones. */
export interface Settled {
  readonly queueId: number
  readonly lost: ReadonlyArray<number>
  readonly dead: ReadonlyArray<number>
  readonly visibleAt: number
}

/** A message in the archive. */
export interface ArchiveRow {
  readonly id: number
  readonly payload: string
  readonly priority: number
  readonly deliveries: number
  readonly enqueuedAt: number
  readonly archivedAt: number
  readonly dead: boolean
  /** Cancelled (`cancel`) before it was acknowledged. */
  readonly cancelled: boolean
  readonly lastError: string | null
}

/** Which archived messages to list: newest first. */
export interface ArchiveQuery {
  readonly dead: boolean | undefined
  readonly limit: number
  readonly before: number | undefined
}

/** Counts of one queue. */
export interface MetricsRow {
  readonly name: string
  readonly depth: number
  readonly inFlight: number
  readonly delayed: number
  readonly oldest: number | null
  readonly archived: number
  readonly dead: number
}

/** A worker to register (or to re-register after it was declared stale). */
export interface WorkerEntry {
  readonly id: string
  /** The queue it consumes, by name. */
  readonly queue: string | null
  readonly host: string
  readonly pid: number
  readonly timeoutMs: number
  readonly now: number
}

/** A registered worker. */
export interface WorkerRow {
  readonly id: string
  readonly queue: string | null
  readonly host: string
  readonly pid: number
  readonly startedAt: number
  readonly heartbeatAt: number
  /** Stale after this long without a heartbeat. */
  readonly timeoutMs: number
  /** Messages it holds a live lease on now. */
  readonly inFlight: number
}

/** Which messages `listMessages` returns: visible now (`queued`), delayed, or leased (lease not expired). */
export type MessageState = "queued" | "delayed" | "leased"

/** A page of a queue's messages in one state, by id ascending. */
export interface MessageQuery {
  readonly state: MessageState
  /** Only ids above this one (paging); 0 for the first page. */
  readonly after: number
  readonly limit: number
  readonly now: number
}

/** What registering did. */
export type Registered = "registered" | "inUse" | "queueMissing"

/** What one maintenance pass did. */
export interface Maintained {
  readonly staleWorkers: ReadonlyArray<string>
  readonly releasedLeases: number
  readonly purgedArchived: number
  readonly purgedKeys: number
  readonly purgedEvents: number
}

/** What deleting a queue did. */
export type Deleted =
  | { readonly _tag: "Deleted"; readonly messages: number; readonly archived: number }
  | { readonly _tag: "InFlight"; readonly inFlight: number }

/**
 * What cancelling a message did: it was queued and is now archived as cancelled; it was leased and
 * is archived as cancelled, its lease revoked (its holder finds the lease lost); or there is no such
 * message in the queue.
 */
export type Cancelled = "cancelled" | "cancelledLeased" | "missing"

/** A change to a queued message: its priority, and when it becomes visible. */
export interface MessageChange {
  readonly priority: number | undefined
  readonly availableAt: number | undefined
}

/** What updating a message did: changed; not changed because it is leased; or no such message in the queue. */
export type Updated = "updated" | "leased" | "missing"

/** A message as it is now (queued, delayed or leased). */
export interface MessageRow {
  readonly id: number
  readonly payload: string
  readonly priority: number
  readonly enqueuedAt: number
  /** When it becomes (or became) visible; for a leased message, when its lease ends. */
  readonly availableAt: number
  readonly deliveries: number
  /** Leased now: a lease token set and not expired. */
  readonly leased: boolean
  readonly lastError: string | null
  /** The progress last reported (JSON text), or null. */
  readonly progress: string | null
  /** Deliveries allowed: its own, or its queue's. */
  readonly maxDeliveries: number
  readonly backoff: Backoff | null
  readonly group: string | null
}

/** What reporting progress did: recorded, or not because the lease is no longer held. */
export type ProgressSet = "set" | "lost"

/** What a wake-up signals: messages to read (`send`), or a leased message cancelled (`cancel`). */
export type Wakeup = "send" | "cancel"

/** The storage operations. Failures of the database are `QueueStoreError`s naming the operation. */
export interface Store {
  /** Creates a queue; the existing one (unchanged) and `created: false` when the name is taken. */
  readonly createQueue: (
    name: string,
    settings: Settings,
    now: number
  ) => Effect.Effect<{ readonly queue: QueueRow; readonly created: boolean }, QueueStoreError>
  readonly findQueue: (name: string) => Effect.Effect<QueueRow | undefined, QueueStoreError>
  readonly listQueues: Effect.Effect<ReadonlyArray<QueueRow>, QueueStoreError>
  readonly updateQueue: (
    name: string,
    changes: Partial<Settings>,
    now: number
  ) => Effect.Effect<QueueRow | undefined, QueueStoreError>
  /** Deletes a queue with everything it holds; refused (`InFlight`) while leases run, unless `force`. */
  readonly deleteQueue: (
    name: string,
    options: { readonly force: boolean; readonly now: number }
  ) => Effect.Effect<Deleted | undefined, QueueStoreError>
  /** Deletes every message (and with `archive`, the archive); how many of each. */
  readonly purgeQueue: (
    name: string,
    options: { readonly archive: boolean }
  ) => Effect.Effect<{ readonly messages: number; readonly archived: number } | undefined, QueueStoreError>

  /**
   * Stores messages atomically, in input order. Keyed messages are idempotent: a key already
   * remembered yields its message's id and stores nothing, so a send whose every message is keyed
   * may be repeated after any failure. An unkeyed send whose outcome is unknown fails with a
   * `QueueStoreError` whose cause is `CommitOutcomeUnknown`.
   */
  readonly send: (
    name: string,
    messages: ReadonlyArray<NewMessage>,
    now: number
  ) => Effect.Effect<Sent | undefined, QueueStoreError>
  /**
   * The synchronous core's lone send: one unkeyed message answered in the caller's synchronous
   * step when the store can (better-sqlite3, its session free, sends not being grouped), with
   * `send`'s outcome and wake-ups: the effect to continue with, usually an `Exit` (it is stored).
   * `undefined` when it cannot, and nothing ran: use `send`. Absent where no send can be.
   */
  readonly sendNow?:
    | ((
        name: string,
        message: NewMessage,
        now: number
      ) => Effect.Effect<Sent | undefined, QueueStoreError> | undefined)
    | undefined

  /** Leases up to `qty` visible messages; exhausted ones (max deliveries reached) are dead-lettered instead. */
  readonly lease: (name: string, request: LeaseRequest) => Effect.Effect<Leases | undefined, QueueStoreError>
  /** Acts on leased messages whose lease the caller still holds (see `SettleRequest.atomic`). */
  readonly settle: (
    name: string,
    request: SettleRequest
  ) => Effect.Effect<Settled | undefined, QueueStoreError>

  readonly listArchive: (
    name: string,
    query: ArchiveQuery
  ) => Effect.Effect<ReadonlyArray<ArchiveRow> | undefined, QueueStoreError>
  /** Moves dead letters (these ids, or the oldest `limit`) back into the queue, visible now; the ids moved. */
  readonly requeueDead: (
    name: string,
    selection: { readonly ids: ReadonlyArray<number> | undefined; readonly limit: number },
    now: number
  ) => Effect.Effect<ReadonlyArray<number> | undefined, QueueStoreError>
  /** Deletes dead letters (these ids, or the oldest `limit`) for good; the ids deleted. */
  readonly deleteDead: (
    name: string,
    selection: { readonly ids: ReadonlyArray<number> | undefined; readonly limit: number }
  ) => Effect.Effect<ReadonlyArray<number> | undefined, QueueStoreError>
  /** A page of the queue's messages in one state (see `MessageQuery`). */
  readonly listMessages: (
    name: string,
    query: MessageQuery
  ) => Effect.Effect<ReadonlyArray<MessageRow> | undefined, QueueStoreError>
  /** Counts of the named queues (every queue when undefined), by name. */
  readonly metrics: (
    names: ReadonlyArray<string> | undefined,
    now: number
  ) => Effect.Effect<ReadonlyArray<MetricsRow>, QueueStoreError>

  /** Registers a worker; a stale holder of the id is replaced (its leases released). */
  readonly registerWorker: (worker: WorkerEntry) => Effect.Effect<Registered, QueueStoreError>
  /** Records a heartbeat; re-registers a worker that was declared stale meanwhile (true then). */
  readonly heartbeat: (worker: WorkerEntry) => Effect.Effect<boolean, QueueStoreError>
  /** Releases a worker's leases and forgets it. */
  readonly deregisterWorker: (id: string, now: number) => Effect.Effect<void, QueueStoreError>
  /** The registered workers (of `queue` only, when given), with their leases live at `now`. */
  readonly listWorkers: (
    queue: string | undefined,
    now: number
  ) => Effect.Effect<ReadonlyArray<WorkerRow>, QueueStoreError>
  /** Deregisters stale workers (releasing their leases) and purges up to `limit` expired archive rows and keys. */
  readonly maintain: (now: number, limit: number) => Effect.Effect<Maintained, QueueStoreError>

  /** Cancels a message: archived as cancelled, whether queued or leased (see `Cancelled`); a leased one signals `cancel`. */
  readonly cancel: (
    name: string,
    id: number,
    now: number
  ) => Effect.Effect<Cancelled | undefined, QueueStoreError>
  /** Changes a message that is queued and not leased (see `Updated`). */
  readonly update: (
    name: string,
    id: number,
    change: MessageChange,
    now: number
  ) => Effect.Effect<Updated | undefined, QueueStoreError>
  /** Message `id` as it is now; `missing` when it is not in the queue. */
  readonly getMessage: (
    name: string,
    id: number,
    now: number
  ) => Effect.Effect<MessageRow | "missing" | undefined, QueueStoreError>
  /** Records `progress` (JSON text) on a message whose lease the caller holds. */
  readonly setProgress: (
    name: string,
    lease: HeldLease,
    progress: string
  ) => Effect.Effect<ProgressSet | undefined, QueueStoreError>
  /** Of these leases, the ids of those the caller no longer holds; reads only. */
  readonly lostLeases: (
    name: string,
    leases: ReadonlyArray<HeldLease>
  ) => Effect.Effect<ReadonlyArray<number> | undefined, QueueStoreError>

  /**
   * Signals that a queue has messages to read (sends, releases, requeues signal on their own), or
   * that a leased message was cancelled (holders should check their leases).
   */
  readonly wakeups: (
    name: string
  ) => Effect.Effect<Stream.Stream<Wakeup, QueueStoreError> | undefined, QueueStoreError>
  /**
   * Up to `limit` events of the log after id `after`, oldest first — of queue `name`, or of every
   * queue when `name` is undefined. Undefined when the named queue does not exist.
   */
  readonly readEvents: (
    name: string | undefined,
    after: number,
    limit: number
  ) => Effect.Effect<ReadonlyArray<EventRow> | undefined, QueueStoreError>
  /** The id of the log's newest event (0 when empty). */
  readonly lastEventId: Effect.Effect<number, QueueStoreError>
  /**
   * Signals that events may have been recorded (PostgreSQL: a notification from any process; the
   * memory store: its own writes). Readers also poll: a store may signal nothing.
   */
  readonly eventSignals: Stream.Stream<void, QueueStoreError>
}

/** The store the queue service runs on. */
export class QueueStore extends Context.Tag("@keel/queue/QueueStore")<QueueStore, Store>() {}

/**
 * A store in memory: every operation and outcome of the SQL store, nothing persisted. For tests of
 * the queue's semantics (consumers, CLI, HTTP) and for queues between the fibers of one process.
 */
export const layerMemory: Layer.Layer<QueueStore> = Layer.effect(QueueStore, Memory.make)
