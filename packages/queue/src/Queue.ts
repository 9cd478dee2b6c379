/**
 * The queue service: queues, producers, consumers, dead letters, workers and metrics over one
 * SQL database, on SQLite, libSQL, PGlite and PostgreSQL.
 *
 * Guarantees, and where each comes from:
 * - A send without a `dedupKey` is one write transaction, re-run only when the database proves it
 *   rolled back (`Retry.transaction`); a COMMIT whose outcome is unknown is `SendOutcomeUnknown`,
 *   never retried. On PostgreSQL and PGlite a single such send outside the caller's transaction is
 *   one autocommit statement instead (atomic on its own), never re-run: a failure that may come
 *   after it ran (lost connection, lock error) is `SendOutcomeUnknown`. A keyed send is
 *   insert-or-ignore on (queue, key) then select by key (`Retry.keyed`), so retrying it always
 *   yields the same message id and one row.
 * - A send inside the caller's `Transaction.immediate` joins it (as a savepoint) and is not retried
 *   there: the business write and the message commit or roll back together.
 * - `read` leases in one write transaction (`BEGIN IMMEDIATE` on SQLite/libSQL; `FOR UPDATE SKIP
 *   LOCKED` on PostgreSQL), with a fresh lease token: a message is never leased twice at once. On
 *   PostgreSQL and PGlite, outside the caller's transaction, that is one autocommit statement.
 * - Acknowledgements (`delete`, `archive`, `extendVisibility`, `release`) check the lease token
 *   under the same write lock and fail with `LeaseLost`, changing nothing, when any lease moved on.
 *   On PostgreSQL and PGlite a single `delete` or `archive` outside the caller's transaction is one
 *   statement whose condition is the lease token, re-checked on the locked newest row version.
 * - Bad input is a typed error before anything is read or written.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { Backend, Batch } from "@keel/sql"
import * as Migrations from "@keel/sql/Migrations"
import * as Telemetry from "@keel/sql/Telemetry"
import type { ConfigError, DateTime, Scope } from "effect"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Consumer from "./Consumer.js"
import * as Ack from "./internal/ack.js"
import * as Events from "./internal/events.js"
import * as Lease from "./internal/lease.js"
import * as Messages from "./internal/messages.js"
import { decoder } from "./internal/optionSchema.js"
import * as QueueOps from "./internal/queues.js"
import * as Send from "./internal/send.js"
import * as Workers from "./internal/workers.js"
import { migrations } from "./migrations/index.js"
import * as Options from "./Options.js"
import type {
  InvalidOption,
  InvalidQueueName,
  LeaseLost,
  MessageLeased,
  MessageNotFound,
  QueueAlreadyExists,
  QueueInFlight,
  QueueNotFound,
  QueueStoreError,
  WorkerIdInUse
} from "./QueueError.js"
import * as QueueStore from "./QueueStore.js"
import {
  type ArchivedMessage,
  type CancelOutcome,
  type Lease as HeldLease,
  type Leased,
  type MaintenanceReport,
  type MessageId,
  type MessageInfo,
  parseQueueName,
  type QueueEvent,
  type QueueInfo,
  type QueueMetrics,
  type ReleaseOutcome,
  type Removed,
  type Worker
} from "./Schemas.js"
import * as SqlQueueStore from "./SqlQueueStore.js"

/** The option types of the operations below (also the `Options` module). */
export type * from "./Options.js"

/** The queue's schema, for `keel db migrate`. */
export { migrations }

/** Errors of sends. */
export type SendError = Send.SendError

/** Errors of lease-checked acknowledgements. */
export type AckError = Ack.AckError

/** The queue service. Every method validates its input first: bad input changes nothing. */
export interface Service {
  /** Creates a queue; `QueueAlreadyExists` when the name is taken. */
  readonly createQueue: (
    name: string,
    settings?: Options.SettingsOptions
  ) => Effect.Effect<QueueInfo, InvalidQueueName | InvalidOption | QueueAlreadyExists | QueueStoreError>
  /** Creates a queue unless one of that name exists; either way returns it (an existing one unchanged). */
  readonly ensureQueue: (
    name: string,
    settings?: Options.SettingsOptions
  ) => Effect.Effect<QueueInfo, InvalidQueueName | InvalidOption | QueueStoreError>
  /** Every queue, by name. */
  readonly listQueues: Effect.Effect<ReadonlyArray<QueueInfo>, QueueStoreError>
  /** One queue. */
  readonly getQueue: (
    name: string
  ) => Effect.Effect<QueueInfo, InvalidQueueName | QueueNotFound | QueueStoreError>
  /** Changes the given settings of a queue. */
  readonly updateQueue: (
    name: string,
    settings: Options.SettingsOptions
  ) => Effect.Effect<QueueInfo, InvalidQueueName | InvalidOption | QueueNotFound | QueueStoreError>
  /**
   * Deletes a queue with its messages, archive, keys and workers. Refused with `QueueInFlight` while
   * any message is leased (lease not expired), unless `force`.
   */
  readonly deleteQueue: (
    name: string,
    options?: { readonly force?: boolean | undefined }
  ) => Effect.Effect<Removed, InvalidQueueName | QueueNotFound | QueueInFlight | QueueStoreError>
  /** Deletes every message of a queue (leased ones too), and with `archive` its archive and dead letters. */
  readonly purgeQueue: (
    name: string,
    options?: { readonly archive?: boolean | undefined }
  ) => Effect.Effect<Removed, InvalidQueueName | QueueNotFound | QueueStoreError>

  /** Sends one message; its id. See the module comment for what is retried. */
  readonly send: (
    queue: string,
    payload: unknown,
    options?: Options.SendOptions
  ) => Effect.Effect<MessageId, SendError>
  /**
   * Sends up to 10,000 messages in one transaction (chunked under the parameter limit); their ids in
   * input order. Retried as a whole only when every message carries a `dedupKey`.
   */
  readonly sendBatch: (
    queue: string,
    messages: ReadonlyArray<Options.OutgoingMessage>
  ) => Effect.Effect<ReadonlyArray<MessageId>, SendError | Batch.BatchTooLarge>

  /**
   * Leases up to `qty` visible messages, by priority, then visible-since, then id: each gets a fresh
   * lease token and the visibility timeout, and its delivery count grows by one. A message whose
   * deliveries reached the queue's max is dead-lettered instead. May return fewer than `qty`.
   */
  readonly read: (
    queue: string,
    options?: Options.ReadOptions
  ) => Effect.Effect<
    ReadonlyArray<Leased>,
    InvalidQueueName | QueueNotFound | InvalidOption | QueueStoreError
  >
  /**
   * Cancels a message by id, whether queued or leased: it is archived as cancelled and never
   * delivered again. A leased one's lease is revoked: its consumer interrupts the handler at its
   * next lease check (at once on PostgreSQL, within one poll interval elsewhere) and acknowledges
   * nothing. `MessageNotFound` when it is not in the queue (any more).
   */
  readonly cancel: (
    queue: string,
    id: number
  ) => Effect.Effect<
    CancelOutcome,
    InvalidQueueName | InvalidOption | QueueNotFound | MessageNotFound | QueueStoreError
  >
  /** Changes a queued message's availability (`delay` from now) and priority; `MessageLeased` while it is leased. */
  readonly update: (
    queue: string,
    id: number,
    options: Options.UpdateOptions
  ) => Effect.Effect<
    void,
    InvalidQueueName | InvalidOption | QueueNotFound | MessageNotFound | MessageLeased | QueueStoreError
  >
  /** A message as it is now (queued, delayed or leased, with its progress); `MessageNotFound` when it is not in the queue. */
  readonly getMessage: (
    queue: string,
    id: number
  ) => Effect.Effect<
    MessageInfo,
    InvalidQueueName | InvalidOption | QueueNotFound | MessageNotFound | QueueStoreError
  >
  /**
   * Records the progress of a message the caller leases (any JSON value up to 4 KiB), shown by
   * `getMessage`; `LeaseLost` when the lease is no longer held. Call it from a handler.
   */
  readonly progress: (
    queue: string,
    lease: HeldLease,
    value: unknown
  ) => Effect.Effect<void, InvalidQueueName | InvalidOption | QueueNotFound | LeaseLost | QueueStoreError>
  /** Deletes a message the caller leases. */
  readonly delete: (queue: string, lease: HeldLease) => Effect.Effect<void, AckError>
  /** Deletes messages the caller leases: all of them, or (`LeaseLost` naming the lost ones) none. */
  readonly deleteBatch: (
    queue: string,
    leases: ReadonlyArray<HeldLease>
  ) => Effect.Effect<void, AckError | Batch.BatchTooLarge>
  /** Moves a message the caller leases to the archive. */
  readonly archive: (queue: string, lease: HeldLease) => Effect.Effect<void, AckError>
  /** Archives messages the caller leases: all of them, or none. */
  readonly archiveBatch: (
    queue: string,
    leases: ReadonlyArray<HeldLease>
  ) => Effect.Effect<void, AckError | Batch.BatchTooLarge>
  /** Extends a lease to `visibilityTimeout` from now; the new deadline. */
  readonly extendVisibility: (
    queue: string,
    lease: HeldLease,
    options?: Options.ExtendOptions
  ) => Effect.Effect<DateTime.Utc, AckError>
  /** Extends leases: all of them, or none. */
  readonly extendVisibilityBatch: (
    queue: string,
    leases: ReadonlyArray<HeldLease>,
    options?: Options.ExtendOptions
  ) => Effect.Effect<DateTime.Utc, AckError | Batch.BatchTooLarge>
  /** Ends a lease: the message is visible again after `delay`, or dead-lettered (see `Options.ReleaseOptions`). */
  readonly release: (
    queue: string,
    lease: HeldLease,
    options?: Options.ReleaseOptions
  ) => Effect.Effect<ReleaseOutcome, AckError>
  /** Ends leases: all of them, or none; the outcome of each, in input order. */
  readonly releaseBatch: (
    queue: string,
    leases: ReadonlyArray<HeldLease>,
    options?: Options.ReleaseOptions
  ) => Effect.Effect<ReadonlyArray<ReleaseOutcome>, AckError | Batch.BatchTooLarge>

  /** Archived messages and dead letters, newest first. */
  readonly listArchive: (
    queue: string,
    query?: Options.ArchiveQuery
  ) => Effect.Effect<
    ReadonlyArray<ArchivedMessage>,
    InvalidQueueName | QueueNotFound | InvalidOption | QueueStoreError
  >
  /** Dead letters, newest first. */
  readonly deadLetters: (
    queue: string,
    query?: Omit<Options.ArchiveQuery, "dead">
  ) => Effect.Effect<
    ReadonlyArray<ArchivedMessage>,
    InvalidQueueName | QueueNotFound | InvalidOption | QueueStoreError
  >
  /** Moves dead letters back into the queue, visible now, deliveries reset; the ids moved. */
  readonly requeueDead: (
    queue: string,
    options?: Options.RequeueOptions
  ) => Effect.Effect<
    ReadonlyArray<MessageId>,
    InvalidQueueName | QueueNotFound | InvalidOption | Batch.BatchTooLarge | QueueStoreError
  >

  /** Deletes dead letters for good (these ids, or the oldest `limit`); the ids deleted. */
  readonly deleteDead: (
    queue: string,
    options?: Options.RequeueOptions
  ) => Effect.Effect<
    ReadonlyArray<MessageId>,
    InvalidQueueName | QueueNotFound | InvalidOption | Batch.BatchTooLarge | QueueStoreError
  >
  /**
   * A page of the queue's messages in one state (`queued`: visible now; `delayed`; `leased`), oldest
   * id first, as `getMessage` shows each; page on with `after` (the last id seen).
   */
  readonly listMessages: (
    queue: string,
    options?: Options.ListMessagesOptions
  ) => Effect.Effect<
    ReadonlyArray<MessageInfo>,
    InvalidQueueName | QueueNotFound | InvalidOption | QueueStoreError
  >

  /** A queue's counts now; also sets the queue's gauges. */
  readonly metrics: (
    queue: string
  ) => Effect.Effect<QueueMetrics, InvalidQueueName | QueueNotFound | QueueStoreError>
  /** Every queue's counts now; also sets the gauges. */
  readonly metricsAll: Effect.Effect<ReadonlyArray<QueueMetrics>, QueueStoreError>

  /**
   * The lifecycle events of the messages of `queue` (of every queue when absent) as they are
   * recorded, in any process: oldest first, each exactly once per reader, from the newest event on
   * (or after `since`). Only queues with `events: true` record events.
   */
  readonly events: (
    queue?: string,
    options?: Options.EventsOptions
  ) => Stream.Stream<QueueEvent, InvalidQueueName | InvalidOption | QueueNotFound | QueueStoreError>
  /**
   * One page of the event log now, without waiting: up to `limit` (default 100) events after id
   * `since` (default 0), oldest first; empty when nothing newer is recorded.
   */
  readonly readEvents: (
    queue?: string,
    options?: { readonly since?: number | undefined; readonly limit?: number | undefined }
  ) => Effect.Effect<
    ReadonlyArray<QueueEvent>,
    InvalidQueueName | InvalidOption | QueueNotFound | QueueStoreError
  >

  /** Registers a worker for the scope: heartbeats while it lasts, deregisters (releasing its leases) at its end. */
  readonly registerWorker: (
    options?: Options.WorkerOptions
  ) => Effect.Effect<
    Options.RegisteredWorker,
    InvalidQueueName | QueueNotFound | InvalidOption | WorkerIdInUse | QueueStoreError,
    Scope.Scope
  >
  /** Registered workers (of one queue, when given). */
  readonly listWorkers: (
    queue?: string
  ) => Effect.Effect<ReadonlyArray<Worker>, InvalidQueueName | QueueStoreError>
  /**
   * One maintenance pass: deregisters workers whose heartbeat is stale and releases their leases,
   * purges archived messages past retention and idempotency keys past retention whose message is
   * gone (at most 10,000 of each per pass). Dead letters are kept until requeued or purged.
   */
  readonly maintain: Effect.Effect<MaintenanceReport, QueueStoreError>

  /**
   * Starts a consumer for the scope (see `Consumer.ts`): reads as slots free up, runs `handler`,
   * archives on success, releases with backoff on failure, dead-letters past max deliveries.
   * Closing the scope shuts it down gracefully.
   */
  readonly consume: <E, R>(
    queue: string,
    handler: (message: Leased) => Effect.Effect<void, E, R>,
    options?: Consumer.ConsumeOptions
  ) => Effect.Effect<
    Consumer.Consumer,
    InvalidQueueName | QueueNotFound | InvalidOption | WorkerIdInUse | QueueStoreError,
    R | Scope.Scope
  >
}

/** The queue service tag. */
export class Queues extends Context.Tag("@keel/queue/Queues")<Queues, Service>() {}

/** Defaults: 256 KiB payloads; queues with a 30 s visibility timeout, 5 deliveries, 7 days retention. */
export const defaults = {
  maxPayloadBytes: 256 * 1024,
  visibilityTimeoutMs: 30_000,
  maxDeliveries: 5,
  retentionMs: 7 * 24 * 60 * 60 * 1000,
  concurrencyLimit: null,
  rateLimit: null,
  rateIntervalMs: null,
  groupConcurrency: 1,
  groupBlockOnDead: false,
  events: false
} as const

const decodeQueueConfig = decoder(Options.QueueConfig)

/**
 * Builds the service over the `QueueStore` in context. Fails with `InvalidOption` when the
 * configuration is out of range.
 */
export const make = (
  config: Options.QueueConfig = {}
): Effect.Effect<Service, InvalidOption, QueueStore.QueueStore> =>
  Effect.gen(function* () {
    const store = yield* QueueStore.QueueStore
    const checked = yield* decodeQueueConfig(config)
    const maxPayloadBytes = checked.maxPayloadBytes ?? defaults.maxPayloadBytes
    const given = QueueOps.settingsOf(checked.defaults ?? {})
    const queues = QueueOps.make(store, QueueOps.withDefaults(given, defaults))
    const workers = Workers.make(store)
    const acks = Ack.make(store)
    const lease = Lease.make(store)
    const tracing = checked.tracing ?? (yield* Telemetry.enabled)
    const operations: Omit<Service, "consume"> = {
      ...queues,
      ...Send.make(store, maxPayloadBytes, tracing),
      read: lease.read,
      ...acks,
      ...Messages.make(store),
      ...Events.make(store),
      registerWorker: workers.registerWorker,
      listWorkers: workers.listWorkers,
      maintain: workers.maintain
    }
    // The event stream lives as long as its reader: not one span.
    const service = tracing
      ? { ...Telemetry.traced("keel.queue", operations), events: operations.events }
      : operations
    return {
      ...service,
      consume: Consumer.make({
        ...service,
        queueName: (name) => parseQueueName(name),
        take: lease.take,
        settleEach: acks.settleEach,
        wakeups: (queue) => Stream.unwrap(workers.wakeups(queue)),
        lostLeases: workers.lostLeases,
        tracing
      })
    }
  })

/** Every way building the layer can fail. */
export type LayerError = Migrations.MigrationError | InvalidOption

/**
 * The service as a layer over the `SqlClient` and `Backend` in context (`SqlQueueStore`). Runs the
 * queue's migrations first (safe when many processes start at once).
 */
export const layer = (
  config: Options.QueueConfig = {}
): Layer.Layer<Queues, LayerError, SqlClient.SqlClient | Backend.Backend> =>
  Layer.effect(Queues, Effect.zipRight(Migrations.run(migrations), make(config))).pipe(
    Layer.provide(SqlQueueStore.layer({ notify: config.notify }))
  )

/** The service over a store already in context (`QueueStore.layerMemory` in tests of the semantics). */
export const layerStore = (
  config: Options.QueueConfig = {}
): Layer.Layer<Queues, InvalidOption, QueueStore.QueueStore> => Layer.effect(Queues, make(config))

/**
 * `layer` configured from the environment: `KEEL_QUEUE_MAX_PAYLOAD_BYTES`,
 * `KEEL_QUEUE_VISIBILITY_TIMEOUT`, `KEEL_QUEUE_MAX_DELIVERIES`, `KEEL_QUEUE_RETENTION` (durations
 * like `30 seconds`) and `KEEL_QUEUE_NOTIFY`; missing ones keep their defaults.
 */
export const layerConfig: Layer.Layer<
  Queues,
  LayerError | ConfigError.ConfigError,
  SqlClient.SqlClient | Backend.Backend
> = Layer.unwrapEffect(
  Effect.map(
    Config.all({
      maxPayloadBytes: Config.option(Config.integer("KEEL_QUEUE_MAX_PAYLOAD_BYTES")),
      visibilityTimeout: Config.option(Config.duration("KEEL_QUEUE_VISIBILITY_TIMEOUT")),
      maxDeliveries: Config.option(Config.integer("KEEL_QUEUE_MAX_DELIVERIES")),
      retention: Config.option(Config.duration("KEEL_QUEUE_RETENTION")),
      notify: Config.withDefault(Config.boolean("KEEL_QUEUE_NOTIFY"), true)
    }),
    (read) =>
      layer({
        maxPayloadBytes: Option.getOrUndefined(read.maxPayloadBytes),
        defaults: {
          visibilityTimeout: Option.getOrUndefined(read.visibilityTimeout),
          maxDeliveries: Option.getOrUndefined(read.maxDeliveries),
          retention: Option.getOrUndefined(read.retention)
        },
        notify: read.notify
      })
  )
)
