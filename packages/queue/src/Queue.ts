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
import { randomUUID } from "node:crypto"
import { hostname } from "node:os"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Backend, Batch, DbError, Migrations, Retry, Transaction } from "@keel/sql"
import {
  Clock,
  Config,
  type ConfigError,
  Context,
  DateTime,
  Duration,
  Effect,
  Either,
  identity,
  Layer,
  Option,
  Predicate,
  Schedule,
  type Scope,
  Stream
} from "effect"
import * as Consumer from "./Consumer.js"
import * as Store from "./internal/store.js"
import { duration, integer, optionalDuration, optionalInteger } from "./internal/validate.js"
import {
  ArchivedMessage,
  encodePayload,
  type Lease,
  Leased,
  LeaseToken,
  MaintenanceReport,
  MessageId,
  maxBatchSize,
  maxDelayMs,
  maxErrorLength,
  maxMaxDeliveries,
  maxRetentionMs,
  maxVisibilityTimeoutMs,
  parseQueueName,
  priorityRange,
  QueueInfo,
  QueueMetrics,
  QueueName,
  type ReleaseOutcome,
  Removed,
  validateDedupKey,
  validateWorkerId,
  Worker
} from "./Message.js"
import * as Metrics from "./Metrics.js"
import { migrations } from "./migrations/index.js"
import {
  InvalidOption,
  InvalidPayload,
  type InvalidQueueName,
  LeaseLost,
  type PayloadTooLarge,
  QueueAlreadyExists,
  QueueInFlight,
  QueueNotFound,
  QueueStoreError,
  SendOutcomeUnknown,
  type StoreCause,
  WorkerIdInUse
} from "./QueueError.js"

/** The queue's schema, for `keel db migrate`. */
export { migrations }

/** Settings to create a queue with, or to change; absent ones keep their default (or current) value. */
export interface SettingsOptions {
  /** How long `read` hides a message when the reader does not say. From 1 ms to 12 hours. */
  readonly visibilityTimeout?: Duration.DurationInput | undefined
  /** Deliveries allowed before a message is dead-lettered. From 1 to 1000. */
  readonly maxDeliveries?: number | undefined
  /** How long archived messages (not dead letters) are kept. From 0 to 3650 days. */
  readonly retention?: Duration.DurationInput | undefined
}

/** Options of one send. */
export interface SendOptions {
  /** Invisible for this long after the send. From 0 to 365 days. Default 0. */
  readonly delay?: Duration.DurationInput | undefined
  /** Lower is delivered first; an integer from -32768 to 32767. Default 0. */
  readonly priority?: number | undefined
  /** An idempotency key: every send with the same key (while it is remembered) yields the same message. */
  readonly dedupKey?: string | undefined
}

/** One message of a batch send. */
export interface OutgoingMessage extends SendOptions {
  readonly payload: unknown
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

/** Errors of sends. */
export type SendError =
  | InvalidQueueName
  | QueueNotFound
  | InvalidPayload
  | PayloadTooLarge
  | InvalidOption
  | SendOutcomeUnknown
  | QueueStoreError

/** Errors of lease-checked acknowledgements. */
export type AckError = InvalidQueueName | QueueNotFound | InvalidOption | LeaseLost | QueueStoreError

/** The queue service. Every method validates its input first: bad input changes nothing. */
export interface Service {
  /** Creates a queue; `QueueAlreadyExists` when the name is taken. */
  readonly createQueue: (
    name: string,
    settings?: SettingsOptions
  ) => Effect.Effect<QueueInfo, InvalidQueueName | InvalidOption | QueueAlreadyExists | QueueStoreError>
  /** Creates a queue unless one of that name exists; either way returns it (an existing one unchanged). */
  readonly ensureQueue: (
    name: string,
    settings?: SettingsOptions
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
    settings: SettingsOptions
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
    options?: SendOptions
  ) => Effect.Effect<MessageId, SendError>
  /**
   * Sends up to 10,000 messages in one transaction (chunked under the parameter limit); their ids in
   * input order. Retried as a whole only when every message carries a `dedupKey`.
   */
  readonly sendBatch: (
    queue: string,
    messages: ReadonlyArray<OutgoingMessage>
  ) => Effect.Effect<ReadonlyArray<MessageId>, SendError | Batch.BatchTooLarge>

  /**
   * Leases up to `qty` visible messages, by priority, then visible-since, then id: each gets a fresh
   * lease token and the visibility timeout, and its delivery count grows by one. A message whose
   * deliveries reached the queue's max is dead-lettered instead. May return fewer than `qty`.
   */
  readonly read: (
    queue: string,
    options?: ReadOptions
  ) => Effect.Effect<
    ReadonlyArray<Leased>,
    InvalidQueueName | QueueNotFound | InvalidOption | QueueStoreError
  >
  /** Deletes a message the caller leases. */
  readonly delete: (queue: string, lease: Lease) => Effect.Effect<void, AckError>
  /** Deletes messages the caller leases: all of them, or (`LeaseLost` naming the lost ones) none. */
  readonly deleteBatch: (
    queue: string,
    leases: ReadonlyArray<Lease>
  ) => Effect.Effect<void, AckError | Batch.BatchTooLarge>
  /** Moves a message the caller leases to the archive. */
  readonly archive: (queue: string, lease: Lease) => Effect.Effect<void, AckError>
  /** Archives messages the caller leases: all of them, or none. */
  readonly archiveBatch: (
    queue: string,
    leases: ReadonlyArray<Lease>
  ) => Effect.Effect<void, AckError | Batch.BatchTooLarge>
  /** Extends a lease to `visibilityTimeout` from now; the new deadline. */
  readonly extendVisibility: (
    queue: string,
    lease: Lease,
    options?: ExtendOptions
  ) => Effect.Effect<DateTime.Utc, AckError>
  /** Extends leases: all of them, or none. */
  readonly extendVisibilityBatch: (
    queue: string,
    leases: ReadonlyArray<Lease>,
    options?: ExtendOptions
  ) => Effect.Effect<DateTime.Utc, AckError | Batch.BatchTooLarge>
  /** Ends a lease: the message is visible again after `delay`, or dead-lettered (see `ReleaseOptions`). */
  readonly release: (
    queue: string,
    lease: Lease,
    options?: ReleaseOptions
  ) => Effect.Effect<ReleaseOutcome, AckError>
  /** Ends leases: all of them, or none; the outcome of each, in input order. */
  readonly releaseBatch: (
    queue: string,
    leases: ReadonlyArray<Lease>,
    options?: ReleaseOptions
  ) => Effect.Effect<ReadonlyArray<ReleaseOutcome>, AckError | Batch.BatchTooLarge>

  /** Archived messages and dead letters, newest first. */
  readonly listArchive: (
    queue: string,
    query?: ArchiveQuery
  ) => Effect.Effect<
    ReadonlyArray<ArchivedMessage>,
    InvalidQueueName | QueueNotFound | InvalidOption | QueueStoreError
  >
  /** Dead letters, newest first. */
  readonly deadLetters: (
    queue: string,
    query?: Omit<ArchiveQuery, "dead">
  ) => Effect.Effect<
    ReadonlyArray<ArchivedMessage>,
    InvalidQueueName | QueueNotFound | InvalidOption | QueueStoreError
  >
  /** Moves dead letters back into the queue, visible now, deliveries reset; the ids moved. */
  readonly requeueDead: (
    queue: string,
    options?: RequeueOptions
  ) => Effect.Effect<
    ReadonlyArray<MessageId>,
    InvalidQueueName | QueueNotFound | InvalidOption | Batch.BatchTooLarge | QueueStoreError
  >

  /** A queue's counts now; also sets the queue's gauges. */
  readonly metrics: (
    queue: string
  ) => Effect.Effect<QueueMetrics, InvalidQueueName | QueueNotFound | QueueStoreError>
  /** Every queue's counts now; also sets the gauges. */
  readonly metricsAll: Effect.Effect<ReadonlyArray<QueueMetrics>, QueueStoreError>

  /** Registers a worker for the scope: heartbeats while it lasts, deregisters (releasing its leases) at its end. */
  readonly registerWorker: (
    options?: WorkerOptions
  ) => Effect.Effect<
    RegisteredWorker,
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
export class Queue extends Context.Tag("@keel/queue/Queue")<Queue, Service>() {}

/** Service-wide configuration. */
export interface QueueConfig {
  /** The largest payload accepted, in UTF-8 bytes of its JSON text. Default 256 KiB; at most 64 MiB. */
  readonly maxPayloadBytes?: number | undefined
  /** Settings of queues created without them. */
  readonly defaults?: SettingsOptions | undefined
  /** Signal consumers on send (LISTEN/NOTIFY on PostgreSQL, in-process elsewhere). Default true. */
  readonly notify?: boolean | undefined
}

/** Defaults: 256 KiB payloads; queues with a 30 s visibility timeout, 5 deliveries, 7 days retention. */
export const defaults = {
  maxPayloadBytes: 256 * 1024,
  visibilityTimeoutMs: 30_000,
  maxDeliveries: 5,
  retentionMs: 7 * 24 * 60 * 60 * 1000
} as const

const maxPayloadLimit = 64 * 1024 * 1024

/** The most archived messages (and keys) one maintenance pass purges; later passes take the rest. */
const maintenanceBatch = 10_000

type StoreFailure = SqlError | DbError.DbError | Transaction.TransactionError | Transaction.SessionInUse

const storeFailureTags: ReadonlySet<string> = new Set([
  "SqlError",
  "CommitRejected",
  "TransactionAborted",
  "CommitOutcomeUnknown",
  "SessionInUse"
])

const isStoreFailure = (u: unknown): u is StoreFailure =>
  DbError.isDbError(u) || (Predicate.hasProperty(u, "_tag") && storeFailureTags.has(String(u._tag)))

const toCause = (error: StoreFailure): StoreCause =>
  DbError.isSqlError(error) ? DbError.classify(error) : error

/**
 * The service boundary: database failures become `QueueStoreError { operation }`, on purpose and
 * in one place; the domain's own errors pass through.
 */
const boundary =
  (operation: string) =>
  <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ): Effect.Effect<A, Exclude<E, StoreFailure> | QueueStoreError, R> =>
    Effect.mapError(effect, (error) =>
      isStoreFailure(error)
        ? new QueueStoreError({ operation, cause: toCause(error) })
        : (error as Exclude<E, StoreFailure>)
    )

const queueName = (name: string): Either.Either<QueueName, InvalidQueueName> => parseQueueName(name)

/**
 * True while the caller has a transaction open (Keel's `Transaction.Active`, or any transaction
 * connection in context): then every statement must run inside it, never in autocommit.
 */
const callerTransaction: Effect.Effect<boolean> = Effect.map(
  Effect.all([
    Effect.serviceOption(Transaction.Active),
    Effect.serviceOption(SqlClient.TransactionConnection)
  ]),
  ([active, connection]) => Option.isSome(active) || Option.isSome(connection)
)

/**
 * Failures of an autocommit write after which it may have taken effect: a lost connection, and
 * (as DESIGN.md rule 1 assumes) a lock error reported after the write.
 */
const mayHaveRun = (error: DbError.DbError): boolean =>
  DbError.isTransient(error) || Predicate.isTagged(error, "ConnectionLost")

const truncate = (text: string): string =>
  text.length > maxErrorLength ? `${text.slice(0, maxErrorLength - 1)}…` : text

const uniqueNumbers = (values: ReadonlyArray<number>): ReadonlyArray<number> => [...new Set(values)]

const validateLeases = (
  leases: ReadonlyArray<Lease>,
  single: boolean
): Effect.Effect<ReadonlyArray<Lease>, InvalidOption> =>
  Effect.forEach(leases, (lease, index) => {
    const field = single ? "lease" : `leases[${index}]`
    if (!Predicate.isRecord(lease)) {
      return Effect.fail(
        new InvalidOption({ option: field, value: String(lease), expected: "{ id, lease }" })
      )
    }
    return Effect.zipRight(
      integer(`${field}.id`, lease.id, { min: 1, max: Number.MAX_SAFE_INTEGER }),
      typeof lease.lease === "string" && lease.lease.length >= 1 && lease.lease.length <= 64
        ? Effect.succeed(lease)
        : Effect.fail(
            new InvalidOption({
              option: `${field}.lease`,
              value: typeof lease.lease === "string" ? JSON.stringify(lease.lease) : String(lease.lease),
              expected: "the lease token returned by read"
            })
          )
    )
  })

const toQueueInfo = (row: Store.QueueRow): QueueInfo =>
  new QueueInfo(
    {
      name: storedName(row.name),
      visibilityTimeout: Duration.millis(row.visibility_timeout_ms),
      maxDeliveries: row.max_deliveries,
      retention: Duration.millis(row.retention_ms),
      createdAt: DateTime.unsafeMake(row.created_at),
      updatedAt: DateTime.unsafeMake(row.updated_at)
    },
    true
  )

/** A name read back from the database (validated on the way in; a bad one is a defect). */
const storedName = (name: string): QueueName => QueueName.make(name)

/** The single-message form of a batch operation: a batch of one is never too large. */
const single = <A, E, R>(
  effect: Effect.Effect<A, E | Batch.BatchTooLarge, R>
): Effect.Effect<A, Exclude<E, Batch.BatchTooLarge>, R> =>
  Effect.catchIf(
    effect,
    (error): error is Batch.BatchTooLarge => Predicate.isTagged(error, "BatchTooLarge"),
    (error) => Effect.die(error)
  ) as Effect.Effect<A, Exclude<E, Batch.BatchTooLarge>, R>

/** The prefix of option names inside `field` (`messages[3].`), none for a single send. */
const prefixOf = (field: string): string => (field === "" ? "" : `${field}.`)

/** A send after validation. */
interface Prepared {
  readonly payload: string
  readonly delayMs: number
  readonly priority: number
  readonly dedupKey: string | undefined
}

/**
 * Builds the service over the `SqlClient` and `Backend` in context. Does not run migrations (see
 * `layer`). Fails with `InvalidOption` when the configuration is out of range.
 */
export const make = (
  config: QueueConfig = {}
): Effect.Effect<Service, InvalidOption, SqlClient.SqlClient | Backend.Backend> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const backend = yield* Backend.Backend
    const maxPayloadBytes = yield* optionalInteger(
      "maxPayloadBytes",
      config.maxPayloadBytes,
      { min: 1, max: maxPayloadLimit },
      defaults.maxPayloadBytes
    )
    const defaultSettings = yield* validateSettings(config.defaults ?? {}).pipe(
      Effect.map((settings) => ({
        visibility_timeout_ms: settings.visibility_timeout_ms ?? defaults.visibilityTimeoutMs,
        max_deliveries: settings.max_deliveries ?? defaults.maxDeliveries,
        retention_ms: settings.retention_ms ?? defaults.retentionMs
      }))
    )
    const notify = config.notify ?? true
    const notifyInSql = notify && backend.kind === "postgres"
    const store = Store.make(sql, { notifyInSql })

    /**
     * True when a single operation runs as one autocommit statement: on PostgreSQL and PGlite (where
     * one statement is atomic on its own) and only outside the caller's transaction.
     */
    const alone: Effect.Effect<boolean> =
      backend.dialect === "pg" ? Effect.map(callerTransaction, (open) => !open) : Effect.succeed(false)

    const inContext = <A, E>(effect: Effect.Effect<A, E, Backend.Backend>): Effect.Effect<A, E> =>
      Effect.provideService(effect, Backend.Backend, backend)

    const now = Clock.currentTimeMillis

    /** In-process wake-up after a send, where the database does not deliver one (all but PostgreSQL). */
    const signal = (queueId: number, name: string): Effect.Effect<void> =>
      notify && !notifyInSql
        ? Effect.ignore(backend.notifications.notify(Store.channel(queueId), name))
        : Effect.void

    const queueRow = (name: QueueName) =>
      Effect.flatMap(store.findQueue(name), (rows) => {
        const row = rows[0]
        return row === undefined ? Effect.fail(new QueueNotFound({ queue: name })) : Effect.succeed(row)
      })

    // ---- queues -------------------------------------------------------------------------------

    const createOrEnsure = (name: string, settings: SettingsOptions, ensure: boolean) =>
      Effect.gen(function* () {
        const valid = yield* queueName(name)
        const given = yield* validateSettings(settings)
        const columns = {
          visibility_timeout_ms: given.visibility_timeout_ms ?? defaultSettings.visibility_timeout_ms,
          max_deliveries: given.max_deliveries ?? defaultSettings.max_deliveries,
          retention_ms: given.retention_ms ?? defaultSettings.retention_ms
        }
        const row = yield* Retry.run(
          Retry.transaction(
            Effect.gen(function* () {
              const inserted = yield* store.insertQueue(valid, columns, yield* now)
              const created = inserted[0]
              if (created !== undefined) return created
              if (!ensure) return yield* new QueueAlreadyExists({ queue: valid })
              return yield* queueRow(valid)
            })
          )
        ).pipe(boundary(ensure ? "ensureQueue" : "createQueue"), inContext)
        return toQueueInfo(row)
      })

    const createQueue: Service["createQueue"] = (name, settings = {}) =>
      Effect.catchTag(createOrEnsure(name, settings, false), "QueueNotFound", (error) => Effect.die(error))

    const ensureQueue: Service["ensureQueue"] = (name, settings = {}) =>
      Effect.catchTags(createOrEnsure(name, settings, true), {
        QueueNotFound: (error) => Effect.die(error),
        QueueAlreadyExists: (error) => Effect.die(error)
      })

    const listQueues: Service["listQueues"] = Retry.run(Retry.read(store.listQueues)).pipe(
      Effect.map((rows) => rows.map(toQueueInfo)),
      boundary("listQueues")
    )

    const getQueue: Service["getQueue"] = (name) =>
      Effect.gen(function* () {
        const valid = yield* queueName(name)
        const row = yield* Retry.run(Retry.read(queueRow(valid))).pipe(boundary("getQueue"))
        return toQueueInfo(row)
      })

    const updateQueue: Service["updateQueue"] = (name, settings) =>
      Effect.gen(function* () {
        const valid = yield* queueName(name)
        const columns = yield* validateSettings(settings)
        const row = yield* Retry.run(
          Retry.transaction(
            Effect.gen(function* () {
              const rows = yield* store.updateQueue(valid, columns, yield* now)
              const updated = rows[0]
              return updated === undefined ? yield* new QueueNotFound({ queue: valid }) : updated
            })
          )
        ).pipe(boundary("updateQueue"), inContext)
        return toQueueInfo(row)
      })

    const deleteQueue: Service["deleteQueue"] = (name, options = {}) =>
      Effect.gen(function* () {
        const valid = yield* queueName(name)
        return yield* Retry.run(
          Retry.transaction(
            Effect.gen(function* () {
              const row = yield* queueRow(valid)
              if (options.force !== true) {
                const inFlight = yield* store.inFlight(row.id, yield* now)
                if (inFlight > 0) return yield* new QueueInFlight({ queue: valid, inFlight })
              }
              const messages = yield* store.countMessages(row.id)
              const archived = yield* store.countArchive(row.id)
              yield* store.deleteQueue(row.id)
              return new Removed({ messages, archived })
            })
          )
        ).pipe(boundary("deleteQueue"), inContext)
      })

    const purgeQueue: Service["purgeQueue"] = (name, options = {}) =>
      Effect.gen(function* () {
        const valid = yield* queueName(name)
        return yield* Retry.run(
          Retry.transaction(
            Effect.gen(function* () {
              const row = yield* queueRow(valid)
              const messages = yield* store.purgeMessages(row.id)
              const archived = options.archive === true ? yield* store.purgeArchive(row.id) : 0
              return new Removed({ messages, archived })
            })
          )
        ).pipe(boundary("purgeQueue"), inContext)
      })

    // ---- sends --------------------------------------------------------------------------------

    const prepare = (
      message: OutgoingMessage,
      field: string
    ): Either.Either<Prepared, InvalidPayload | PayloadTooLarge | InvalidOption> =>
      // Synchronous on purpose: validation is pure, and a send should not pay for an effect per check.
      // The first failure in field order is the one reported.
      Either.all({
        payload: Either.mapLeft(encodePayload(message.payload, maxPayloadBytes), (error) =>
          error._tag === "InvalidPayload" && field !== ""
            ? new InvalidPayload({ reason: `${field}: ${error.reason}` })
            : error
        ),
        delayMs: optionalDuration(`${prefixOf(field)}delay`, message.delay, { min: 0, max: maxDelayMs }, 0),
        priority: optionalInteger(`${prefixOf(field)}priority`, message.priority, priorityRange, 0),
        dedupKey:
          message.dedupKey === undefined
            ? Either.right(undefined)
            : validateDedupKey(message.dedupKey, `${prefixOf(field)}dedupKey`)
      })

    const unknownOutcome =
      (queue: QueueName, messages: number) =>
      <A, E, R>(effect: Effect.Effect<A, E | Transaction.CommitOutcomeUnknown, R>) =>
        Effect.catchIf(
          effect,
          (error): error is Transaction.CommitOutcomeUnknown =>
            Predicate.isTagged(error, "CommitOutcomeUnknown"),
          (error) => Effect.fail(new SendOutcomeUnknown({ queue, messages, reason: error.reason.message }))
        )

    /**
     * One autocommit statement whose failure may come after it ran (a lost connection, or a lock
     * error reported late): its outcome is unknown, and an unkeyed send must not be re-run.
     */
    const statementOutcomeUnknown =
      (queue: QueueName, messages: number) =>
      <A, E, R>(effect: Effect.Effect<A, E | SqlError, R>) =>
        Effect.catchIf(
          effect,
          (error): error is SqlError => DbError.isSqlError(error) && mayHaveRun(DbError.classify(error)),
          (error) =>
            Effect.fail(new SendOutcomeUnknown({ queue, messages, reason: DbError.classify(error).message }))
        )

    /**
     * One unkeyed message: one statement that also resolves the queue (and, on PostgreSQL, notifies).
     * Inside the caller's transaction it joins it. Outside one, on the PostgreSQL dialect, the
     * statement runs on its own in autocommit: it is atomic by itself, so BEGIN/COMMIT would only add
     * round trips; it is never re-run, and a failure that may come after it ran is
     * `SendOutcomeUnknown`. On SQLite and libSQL it is its own `BEGIN IMMEDIATE` transaction
     * (`Transaction.single`: a busy BEGIN or a failed statement proves nothing persisted, so it is
     * re-run; a COMMIT with an unknown outcome is `SendOutcomeUnknown`).
     */
    const sendOne = (queue: QueueName, message: Prepared) =>
      Effect.flatMap(now, (at) => {
        const fields = {
          payload: message.payload,
          priority: message.priority,
          availableAt: at + message.delayMs
        }
        // Built only on the path taken: building a statement is part of a send's cost.
        const transaction = () =>
          store
            .insertOne(queue, fields, at, (statement) => Retry.run(Retry.single(statement, backend)))
            .pipe(unknownOutcome(queue, 1), boundary("send"))
        const written =
          backend.dialect === "pg"
            ? Effect.flatMap(alone, (autocommit) =>
                autocommit
                  ? store
                      .insertOne(queue, fields, at, identity)
                      .pipe(statementOutcomeUnknown(queue, 1), boundary("send"))
                  : transaction()
              )
            : transaction()
        return Effect.flatMap(written, (rows) => {
          const row = rows[0]
          if (row === undefined) return Effect.fail(new QueueNotFound({ queue }))
          return Effect.as(
            Effect.zipRight(signal(row.queue_id, queue), Metrics.count(Metrics.sent, queue, 1)),
            MessageId.make(row.id, true)
          )
        })
      })

    /**
     * Writes a batch inside the current transaction: new keys first (insert-or-ignore, sorted so two
     * batches never deadlock), then every unkeyed message and the first message of each new key.
     * Returns the queue id and, per input, the new message's id (undefined for an existing key).
     */
    const writeBatch = (queue: QueueName, messages: ReadonlyArray<Prepared>) =>
      Effect.gen(function* () {
        const at = yield* now
        const row = yield* queueRow(queue)
        const keys = [
          ...new Set(messages.flatMap((m) => (m.dedupKey === undefined ? [] : [m.dedupKey])))
        ].sort()
        const fresh = keys.length === 0 ? new Set<string>() : yield* store.insertKeys(row.id, keys, at)
        const claimed = new Set<string>()
        const toInsert: Array<number> = []
        messages.forEach((message, index) => {
          if (message.dedupKey === undefined) toInsert.push(index)
          else if (fresh.has(message.dedupKey) && !claimed.has(message.dedupKey)) {
            claimed.add(message.dedupKey)
            toInsert.push(index)
          }
        })
        const inserted = yield* store.insertMany(
          row.id,
          queue,
          toInsert.flatMap((index) => {
            const message = messages[index]
            return message === undefined
              ? []
              : [{ payload: message.payload, priority: message.priority, availableAt: at + message.delayMs }]
          }),
          at
        )
        const result: Array<number | undefined> = messages.map(() => undefined)
        const keyed: Array<readonly [string, number]> = []
        toInsert.forEach((index, position) => {
          const id = inserted[position]
          result[index] = id
          const key = messages[index]?.dedupKey
          if (key !== undefined && id !== undefined) keyed.push([key, id])
        })
        if (keyed.length > 0) yield* store.setKeyMessages(row.id, keyed)
        return { queueId: row.id, ids: result }
      })

    /**
     * Completes the ids of a batch from its keys (select by key): every message whose id is not in
     * `ids` carries a key that names its message. Also returns the queue id.
     */
    const resolveKeys = (
      queue: QueueName,
      messages: ReadonlyArray<Prepared>,
      written: { readonly queueId: number; readonly ids: ReadonlyArray<number | undefined> } | undefined
    ) =>
      Effect.gen(function* () {
        const missing = messages.flatMap((m, index) =>
          written?.ids[index] === undefined && m.dedupKey !== undefined ? [m.dedupKey] : []
        )
        const known: ReadonlyMap<string, { readonly queue_id: number; readonly message_id: number | null }> =
          missing.length === 0 ? new Map() : yield* store.selectKeys(queue, missing)
        let queueId = written?.queueId
        const ids: Array<MessageId> = []
        for (const [index, message] of messages.entries()) {
          const key = message.dedupKey === undefined ? undefined : known.get(message.dedupKey)
          const id = written?.ids[index] ?? key?.message_id
          queueId ??= key?.queue_id
          if (id === undefined || id === null) {
            return yield* Effect.dieMessage(`queue ${queue}: a sent message has no id (invariant broken)`)
          }
          ids.push(MessageId.make(id, true))
        }
        if (queueId === undefined)
          return yield* Effect.dieMessage(`queue ${queue}: no queue id (invariant broken)`)
        return { queueId, ids }
      })

    const sendMany = (queue: QueueName, messages: ReadonlyArray<Prepared>, operation: string) =>
      Effect.gen(function* () {
        const allKeyed = messages.every((m) => m.dedupKey !== undefined)
        const inTransaction = Option.isSome(yield* Effect.serviceOption(Transaction.Active))
        // Insert-or-ignore on (queue, key), then select by key: re-running it cannot duplicate, so
        // it is retried even when the outcome of COMMIT is unknown. Inside the caller's
        // transaction it runs once: only the caller can re-run the whole transaction.
        const keyed = Retry.run(
          Retry.keyed({
            key: `${queue}:${messages[0]?.dedupKey ?? ""}`,
            write: Transaction.immediate(writeBatch(queue, messages)),
            read: resolveKeys(queue, messages, undefined)
          })
        )
        const unkeyed = Retry.run(
          Retry.transaction(
            Effect.flatMap(writeBatch(queue, messages), (written) => resolveKeys(queue, messages, written))
          )
        ).pipe(unknownOutcome(queue, messages.length))
        const chosen: Effect.Effect<
          { readonly queueId: number; readonly ids: ReadonlyArray<MessageId> },
          Effect.Effect.Error<typeof keyed> | Effect.Effect.Error<typeof unkeyed>,
          Backend.Backend
        > = allKeyed && !inTransaction ? keyed : unkeyed
        const result = yield* boundary(operation)(chosen)
        yield* signal(result.queueId, queue)
        yield* Metrics.count(Metrics.sent, queue, messages.length)
        return result.ids
      })

    const send: Service["send"] = (queue, payload, options = {}) =>
      Effect.suspend((): Effect.Effect<MessageId, SendError> => {
        const valid = queueName(queue)
        if (Either.isLeft(valid)) return Effect.fail(valid.left)
        const message = prepare({ ...options, payload }, "")
        if (Either.isLeft(message)) return Effect.fail(message.left)
        if (message.right.dedupKey === undefined) return sendOne(valid.right, message.right)
        return Effect.flatMap(sendMany(valid.right, [message.right], "send"), (ids) => {
          const id = ids[0]
          return id === undefined ? Effect.dieMessage("a keyed send returned no id") : Effect.succeed(id)
        }).pipe(inContext)
      })

    const sendBatch: Service["sendBatch"] = (queue, messages) =>
      Effect.gen(function* () {
        const valid = yield* queueName(queue)
        yield* Batch.validate(messages, maxBatchSize)
        const prepared = yield* Effect.forEach(messages, (message, index) =>
          prepare(message, `messages[${index}]`)
        )
        if (prepared.length === 0) {
          yield* Retry.run(Retry.read(queueRow(valid))).pipe(boundary("sendBatch"))
          return []
        }
        return yield* sendMany(valid, prepared, "sendBatch")
      }).pipe(inContext)

    // ---- reads --------------------------------------------------------------------------------

    /**
     * Leases in one write transaction (re-run only when it provably rolled back): a no-lock check
     * first, so a read that finds nothing visible takes no write lock and idle consumers never block
     * producers on SQLite; then candidates are locked, the exhausted ones dead-lettered and the rest
     * leased. Undefined when nothing is visible.
     */
    const leaseInTransaction = (
      valid: QueueName,
      qty: number,
      visibility: number | undefined,
      workerId: string | null
    ) =>
      Effect.gen(function* () {
        // A read that finds nothing visible takes no write lock: idle consumers never block producers.
        const ready = yield* Retry.run(Retry.read(store.readyCheck(valid, yield* now))).pipe(boundary("read"))
        const row = ready[0]
        if (row === undefined) return yield* new QueueNotFound({ queue: valid })
        if (!row.ready) return undefined
        const token = yield* Effect.sync(() => LeaseToken.make(randomUUID(), true))
        return yield* Retry.run(
          Retry.transaction(
            Effect.gen(function* () {
              const at = yield* now
              const until = at + (visibility ?? row.visibility_timeout_ms)
              const taken: Array<Store.CandidateRow> = []
              let dead = 0
              while (taken.length < qty) {
                const candidates = yield* store.selectCandidates(row.id, at, qty - taken.length)
                if (candidates.length === 0) break
                const exhausted = candidates.filter((c) => c.deliveries >= row.max_deliveries)
                const fresh = candidates.filter((c) => c.deliveries < row.max_deliveries)
                if (exhausted.length > 0) {
                  yield* store.archiveMessages(
                    exhausted.map((c) => c.id),
                    {
                      dead: true,
                      now: at,
                      error: null,
                      fallbackError: Store.exhaustedError(row.max_deliveries),
                      undo: 0
                    }
                  )
                  dead += exhausted.length
                }
                if (fresh.length > 0) {
                  yield* store.lease(
                    fresh.map((c) => c.id),
                    { token, workerId, now: at, until }
                  )
                  taken.push(...fresh)
                }
                if (exhausted.length === 0) break
              }
              return { token, taken: taken.map((message) => ({ message, until })), at, dead }
            })
          )
        ).pipe(boundary("read"), inContext)
      })

    /**
     * Leases with one autocommit statement (`leaseNext`: `FOR UPDATE SKIP LOCKED`, dead-letters the
     * exhausted candidates, leases the rest), repeated only while it dead-lettered some and more are
     * wanted, as the transaction's loop does. An idle read is that one statement and writes nothing.
     * Not re-run after a failure: it may have leased messages already (they come back when their
     * visibility timeout passes, as after a consumer crash).
     */
    const leaseAlone = (valid: QueueName, qty: number, visibility: number | null, workerId: string | null) =>
      Effect.gen(function* () {
        const token = yield* Effect.sync(() => LeaseToken.make(randomUUID(), true))
        const at = yield* now
        const taken: Array<{ readonly message: Store.CandidateRow; readonly until: number }> = []
        let dead = 0
        while (taken.length < qty) {
          const rows = yield* store.leaseNext(valid, qty - taken.length, {
            token,
            workerId,
            now: at,
            visibilityMs: visibility
          })
          const first = rows[0]
          if (first === undefined) return yield* new QueueNotFound({ queue: valid })
          for (const row of rows) {
            if (row.id === null) continue
            if (
              row.payload === null ||
              row.priority === null ||
              row.enqueued_at === null ||
              row.deliveries === null ||
              row.visible_at === null
            ) {
              return yield* Effect.dieMessage(`queue ${valid}: a leased message row has null columns`)
            }
            taken.push({
              message: {
                id: row.id,
                payload: row.payload,
                priority: row.priority,
                enqueued_at: row.enqueued_at,
                deliveries: row.deliveries,
                last_error: row.last_error
              },
              until: row.visible_at
            })
          }
          dead += first.dead
          if (first.dead === 0) break
        }
        return { token, taken, at, dead }
      }).pipe(boundary("read"))

    const read: Service["read"] = (queue, options = {}) =>
      Effect.gen(function* () {
        const valid = yield* queueName(queue)
        const qty = yield* optionalInteger("qty", options.qty, { min: 1, max: maxBatchSize }, 1)
        const visibility =
          options.visibilityTimeout === undefined
            ? undefined
            : yield* duration("visibilityTimeout", options.visibilityTimeout, {
                min: 1,
                max: maxVisibilityTimeoutMs
              })
        const workerId = options.workerId === undefined ? null : yield* validateWorkerId(options.workerId)
        const leased = (yield* alone)
          ? yield* leaseAlone(valid, qty, visibility ?? null, workerId)
          : yield* leaseInTransaction(valid, qty, visibility, workerId)
        if (leased === undefined) return []
        yield* Metrics.count(Metrics.leased, valid, leased.taken.length)
        yield* Metrics.count(Metrics.deadLettered, valid, leased.dead)
        const leasedAt = DateTime.unsafeMake(leased.at)
        return leased.taken.map(
          ({ message: c, until }) =>
            new Leased(
              {
                id: MessageId.make(c.id, true),
                queue: valid,
                payload: JSON.parse(c.payload),
                priority: c.priority,
                deliveries: c.deliveries + 1,
                enqueuedAt: DateTime.unsafeMake(c.enqueued_at),
                leasedAt,
                visibleAt: DateTime.unsafeMake(until),
                lease: leased.token,
                workerId,
                lastError: c.last_error
              },
              true
            )
        )
      })

    // ---- acknowledgements ---------------------------------------------------------------------

    /**
     * Checks, under the write lock, that the caller holds every lease, then acts on all of them;
     * when any is lost, fails with `LeaseLost` naming them and changes nothing.
     */
    const withLeases = <A, E>(
      operation: string,
      queue: string,
      leases: ReadonlyArray<Lease>,
      single: boolean,
      act: (
        queue: QueueName,
        held: ReadonlyArray<Store.LeaseRow>,
        at: number
      ) => Effect.Effect<A, E | SqlError, Backend.Backend>
    ) =>
      Effect.gen(function* () {
        const valid = yield* queueName(queue)
        yield* Batch.validate(leases, maxBatchSize)
        const checked = yield* validateLeases(leases, single)
        return yield* Retry.run(
          Retry.transaction(
            Effect.gen(function* () {
              const rows = yield* store.selectLeases(valid, uniqueNumbers(checked.map((lease) => lease.id)))
              const byId = new Map(rows.map((row) => [row.id, row]))
              const lost = uniqueNumbers(
                checked
                  .filter((lease) => byId.get(lease.id)?.lease_token !== lease.lease)
                  .map((lease) => lease.id)
              )
              if (lost.length > 0) {
                if (rows.length === 0 && (yield* store.findQueue(valid)).length === 0) {
                  return yield* new QueueNotFound({ queue: valid })
                }
                return yield* new LeaseLost({ queue: valid, messageIds: lost })
              }
              return yield* act(valid, rows, yield* now)
            })
          )
        ).pipe(boundary(operation), inContext)
      })

    /**
     * True when one lease, on the PostgreSQL dialect, is acknowledged outside the caller's
     * transaction: then `ackAlone` does it in one autocommit statement.
     */
    const acksAlone = (leases: ReadonlyArray<Lease>): Effect.Effect<boolean> =>
      leases.length === 1 ? alone : Effect.succeed(false)

    /**
     * Acknowledges one lease with `statement`, which checks the lease and acts in one autocommit
     * statement (its row count says whether the lease was held) instead of a transaction of a
     * locking check and the writes; no row: `QueueNotFound` or `LeaseLost`, nothing changed. Not
     * re-run: a failure may come after it took effect, and a re-run would then report a lease it did
     * acknowledge as lost.
     */
    const ackAlone = (
      operation: "delete" | "archive",
      queue: string,
      leases: ReadonlyArray<Lease>,
      single: boolean,
      statement: (
        queue: QueueName,
        id: number,
        token: string,
        at: number
      ) => Effect.Effect<ReadonlyArray<number>, SqlError>
    ) =>
      Effect.gen(function* () {
        const valid = yield* queueName(queue)
        const [lease] = yield* validateLeases(leases, single)
        if (lease === undefined) return yield* Effect.dieMessage("ackAlone takes exactly one lease")
        yield* Effect.gen(function* () {
          const acted = yield* statement(valid, lease.id, lease.lease, yield* now)
          if (acted.length > 0) return
          if ((yield* Retry.run(Retry.read(store.findQueue(valid)))).length === 0) {
            return yield* new QueueNotFound({ queue: valid })
          }
          return yield* new LeaseLost({ queue: valid, messageIds: [lease.id] })
        }).pipe(boundary(operation))
        yield* Metrics.count(Metrics.acknowledged, valid, 1, { action: operation })
      })

    const deleteLeases = (queue: string, leases: ReadonlyArray<Lease>, single: boolean) =>
      leases.length === 0
        ? Effect.asVoid(queueName(queue))
        : Effect.flatMap(acksAlone(leases), (alone) =>
            alone
              ? ackAlone("delete", queue, leases, single, (valid, id, token) =>
                  store.deleteLeased(valid, id, token)
                )
              : withLeases("delete", queue, leases, single, (valid, held) =>
                  Effect.zipRight(
                    store.deleteMessages(held.map((row) => row.id)),
                    Metrics.count(Metrics.acknowledged, valid, held.length, { action: "delete" })
                  )
                )
          )

    const archiveLeases = (queue: string, leases: ReadonlyArray<Lease>, single: boolean) =>
      leases.length === 0
        ? Effect.asVoid(queueName(queue))
        : Effect.flatMap(acksAlone(leases), (alone) =>
            alone
              ? ackAlone("archive", queue, leases, single, (valid, id, token, at) =>
                  store.archiveLeased(valid, id, token, at)
                )
              : withLeases("archive", queue, leases, single, (valid, held, at) =>
                  Effect.zipRight(
                    store.archiveMessages(
                      held.map((row) => row.id),
                      { dead: false, now: at, error: null, fallbackError: null, undo: 0 }
                    ),
                    Metrics.count(Metrics.acknowledged, valid, held.length, { action: "archive" })
                  )
                )
          )

    const extendLeases = (
      queue: string,
      leases: ReadonlyArray<Lease>,
      options: ExtendOptions,
      single: boolean
    ) =>
      Effect.gen(function* () {
        const visibility =
          options.visibilityTimeout === undefined
            ? undefined
            : yield* duration("visibilityTimeout", options.visibilityTimeout, {
                min: 1,
                max: maxVisibilityTimeoutMs
              })
        if (leases.length === 0) {
          yield* queueName(queue)
          return DateTime.unsafeMake(yield* now)
        }
        return yield* withLeases("extendVisibility", queue, leases, single, (valid, held, at) =>
          Effect.gen(function* () {
            const timeout = visibility ?? (yield* queueRow(valid)).visibility_timeout_ms
            yield* store.extendMessages(
              held.map((row) => row.id),
              at + timeout
            )
            return DateTime.unsafeMake(at + timeout)
          })
        )
      })

    const releaseLeases = (
      queue: string,
      leases: ReadonlyArray<Lease>,
      options: ReleaseOptions,
      single: boolean
    ) =>
      Effect.gen(function* () {
        const delayMs = yield* optionalDuration("delay", options.delay, { min: 0, max: maxDelayMs }, 0)
        if (options.error !== undefined && typeof options.error !== "string") {
          return yield* new InvalidOption({
            option: "error",
            value: String(options.error),
            expected: "a string"
          })
        }
        const error = options.error === undefined ? null : truncate(options.error)
        if (leases.length === 0) {
          yield* queueName(queue)
          return []
        }
        return yield* withLeases("release", queue, leases, single, (valid, held, at) =>
          Effect.gen(function* () {
            const maxDeliveries =
              error === null ? Number.POSITIVE_INFINITY : (yield* queueRow(valid)).max_deliveries
            const dead = held.filter((row) => row.deliveries >= maxDeliveries).map((row) => row.id)
            const alive = held.filter((row) => row.deliveries < maxDeliveries).map((row) => row.id)
            if (dead.length > 0) {
              yield* store.archiveMessages(dead, { dead: true, now: at, error, fallbackError: null, undo: 0 })
              yield* Metrics.count(Metrics.deadLettered, valid, dead.length)
            }
            if (alive.length > 0) {
              yield* store.releaseMessages(alive, { availableAt: at + delayMs, error })
              yield* Metrics.count(Metrics.released, valid, alive.length)
            }
            if (alive.length > 0 && delayMs === 0) yield* signalByName(valid)
            const deadIds = new Set(dead)
            return leases.map((lease): ReleaseOutcome => (deadIds.has(lease.id) ? "dead" : "released"))
          })
        )
      })

    const signalByName = (queue: QueueName): Effect.Effect<void> =>
      notify && !notifyInSql
        ? Effect.ignore(
            Effect.flatMap(store.findQueue(queue), (rows) =>
              rows[0] ? signal(rows[0].id, queue) : Effect.void
            )
          )
        : Effect.void

    // ---- archive and dead letters -------------------------------------------------------------

    const toArchived = (queue: QueueName) => (row: Store.ArchiveRow) =>
      new ArchivedMessage(
        {
          id: MessageId.make(row.id, true),
          queue,
          payload: JSON.parse(row.payload),
          priority: row.priority,
          deliveries: row.deliveries,
          enqueuedAt: DateTime.unsafeMake(row.enqueued_at),
          archivedAt: DateTime.unsafeMake(row.archived_at),
          dead: row.dead,
          lastError: row.last_error
        },
        true
      )

    const listArchive: Service["listArchive"] = (queue, query = {}) =>
      Effect.gen(function* () {
        const valid = yield* queueName(queue)
        const limit = yield* optionalInteger("limit", query.limit, { min: 1, max: maxBatchSize }, 100)
        const before =
          query.before === undefined
            ? undefined
            : yield* integer("before", query.before, { min: 1, max: Number.MAX_SAFE_INTEGER })
        const rows = yield* Retry.run(
          Retry.read(
            Effect.flatMap(queueRow(valid), (row) =>
              store.listArchive(row.id, { dead: query.dead, limit, before })
            )
          )
        ).pipe(boundary("listArchive"))
        return rows.map(toArchived(valid))
      })

    const deadLetters: Service["deadLetters"] = (queue, query = {}) =>
      listArchive(queue, { ...query, dead: true })

    const requeueDead: Service["requeueDead"] = (queue, options = {}) =>
      Effect.gen(function* () {
        const valid = yield* queueName(queue)
        const limit = yield* optionalInteger(
          "limit",
          options.limit,
          { min: 1, max: maxBatchSize },
          maxBatchSize
        )
        const ids =
          options.ids === undefined
            ? undefined
            : yield* Effect.flatMap(Batch.validate(options.ids, maxBatchSize), (given) =>
                Effect.forEach(given, (id, index) =>
                  integer(`ids[${index}]`, id, { min: 1, max: Number.MAX_SAFE_INTEGER })
                )
              )
        const result = yield* Retry.run(
          Retry.transaction(
            Effect.gen(function* () {
              const row = yield* queueRow(valid)
              const moved = yield* store.requeueDead(
                row.id,
                { ids: ids === undefined ? undefined : uniqueNumbers(ids), limit },
                yield* now
              )
              return { queueId: row.id, moved }
            })
          )
        ).pipe(boundary("requeueDead"), inContext)
        if (result.moved.length > 0) yield* signal(result.queueId, valid)
        return result.moved.map((id) => MessageId.make(id, true))
      })

    // ---- metrics ------------------------------------------------------------------------------

    const toMetrics = (at: number) => (row: Store.MetricsRow) =>
      new QueueMetrics(
        {
          queue: storedName(row.name),
          depth: row.depth,
          inFlight: row.in_flight,
          delayed: row.delayed,
          oldestMessageAgeMs: row.oldest === null ? null : Math.max(0, at - row.oldest),
          archived: row.archived,
          dead: row.dead,
          measuredAt: DateTime.unsafeMake(at)
        },
        true
      )

    const metrics: Service["metrics"] = (queue) =>
      Effect.gen(function* () {
        const valid = yield* queueName(queue)
        const at = yield* now
        const rows = yield* Retry.run(Retry.read(store.metrics([valid], at))).pipe(boundary("metrics"))
        const row = rows[0]
        if (row === undefined) return yield* new QueueNotFound({ queue: valid })
        const result = toMetrics(at)(row)
        yield* Metrics.record(result)
        return result
      })

    const metricsAll: Service["metricsAll"] = Effect.gen(function* () {
      const at = yield* now
      const rows = yield* Retry.run(Retry.read(store.metrics(undefined, at))).pipe(boundary("metrics"))
      const result = rows.map(toMetrics(at))
      yield* Effect.forEach(result, Metrics.record, { discard: true })
      return result
    })

    // ---- workers and maintenance --------------------------------------------------------------

    const deregister = (id: string) =>
      Retry.run(
        Retry.transaction(
          Effect.gen(function* () {
            yield* store.releaseLeasesOf([id], yield* now)
            yield* store.deleteWorkers([id])
          })
        )
      ).pipe(boundary("deregisterWorker"), inContext)

    const registerWorker: Service["registerWorker"] = (options = {}) =>
      Effect.gen(function* () {
        const id =
          options.workerId === undefined
            ? yield* Effect.sync(() => randomUUID())
            : yield* validateWorkerId(options.workerId)
        const queue = options.queue === undefined ? undefined : yield* queueName(options.queue)
        const heartbeatMs = yield* optionalDuration(
          "heartbeatInterval",
          options.heartbeatInterval,
          { min: 10, max: 10 * 60_000 },
          5_000
        )
        const timeoutMs = yield* optionalDuration(
          "workerTimeout",
          options.workerTimeout,
          { min: 20, max: maxVisibilityTimeoutMs },
          Math.max(30_000, heartbeatMs * 3)
        )
        if (timeoutMs <= heartbeatMs) {
          return yield* new InvalidOption({
            option: "workerTimeout",
            value: `${timeoutMs} ms`,
            expected: `longer than heartbeatInterval (${heartbeatMs} ms)`
          })
        }
        const identity = yield* Effect.sync(() => ({ host: hostname(), pid: process.pid }))
        const worker = (at: number, queueId: number | null): Store.NewWorker => ({
          id,
          queueId,
          host: identity.host,
          pid: identity.pid,
          now: at,
          timeoutMs
        })
        const queueId =
          queue === undefined ? Effect.succeed(null) : Effect.map(queueRow(queue), (row) => row.id)
        const register = Retry.run(
          Retry.transaction(
            Effect.gen(function* () {
              const at = yield* now
              const entry = worker(at, yield* queueId)
              if ((yield* store.insertWorker(entry)).length > 0) return
              const expiry = (yield* store.workerExpiry(id))[0]
              if (expiry !== undefined && expiry.n >= at) return yield* new WorkerIdInUse({ workerId: id })
              // The previous holder of this id is stale (crashed): its leases are not ours.
              yield* store.releaseLeasesOf([id], at)
              yield* store.replaceWorker(entry)
            })
          )
        ).pipe(boundary("registerWorker"), inContext)
        yield* Effect.acquireRelease(register, () =>
          Effect.catchAll(deregister(id), (error) =>
            Effect.logWarning(`deregistering worker ${id} failed`, error.message)
          )
        )
        const beat = Retry.run(
          Retry.transaction(
            Effect.gen(function* () {
              const at = yield* now
              if ((yield* store.heartbeat(id, at)).length > 0) return false
              // Declared stale by another process's maintenance: our leases were released. Rejoin.
              yield* store.insertWorker(worker(at, yield* queueId))
              return true
            })
          )
        ).pipe(
          boundary("heartbeat"),
          inContext,
          Effect.tap((rejoined) =>
            rejoined ? Effect.logWarning(`worker ${id} was declared stale and re-registered`) : Effect.void
          ),
          Effect.catchAll((error) => Effect.logWarning(`heartbeat of worker ${id} failed`, error.message))
        )
        yield* Effect.forkScoped(
          Effect.repeat(Effect.zipRight(Effect.sleep(Duration.millis(heartbeatMs)), beat), Schedule.forever)
        )
        return { id, queue: queue ?? null }
      })

    const listWorkers: Service["listWorkers"] = (queue) =>
      Effect.gen(function* () {
        const valid = queue === undefined ? undefined : yield* queueName(queue)
        const rows = yield* Retry.run(Retry.read(store.listWorkers(valid))).pipe(boundary("listWorkers"))
        return rows.map(
          (row) =>
            new Worker(
              {
                id: row.id,
                queue: row.queue === null ? null : storedName(row.queue),
                host: row.host,
                pid: row.pid,
                startedAt: DateTime.unsafeMake(row.started_at),
                heartbeatAt: DateTime.unsafeMake(row.heartbeat_at)
              },
              true
            )
        )
      })

    const maintain: Service["maintain"] = Retry.run(
      Retry.transaction(
        Effect.gen(function* () {
          const at = yield* now
          const stale = yield* store.staleWorkers(at)
          const releasedLeases = stale.length === 0 ? 0 : yield* store.releaseLeasesOf(stale, at)
          if (stale.length > 0) yield* store.deleteWorkers(stale)
          const purgedArchived = yield* store.purgeExpiredArchive(at, maintenanceBatch)
          const purgedKeys = yield* store.purgeExpiredKeys(at, maintenanceBatch)
          return new MaintenanceReport({ staleWorkers: stale, releasedLeases, purgedArchived, purgedKeys })
        })
      )
    ).pipe(boundary("maintain"), inContext)

    const wakeups = (queue: QueueName): Stream.Stream<void, QueueNotFound | QueueStoreError> =>
      Stream.unwrap(
        Effect.map(Retry.run(Retry.read(queueRow(queue))).pipe(boundary("listen")), (row) =>
          Stream.mapError(
            Stream.map(backend.notifications.listen(Store.channel(row.id)), () => undefined),
            (cause) => new QueueStoreError({ operation: "listen", cause })
          )
        )
      )

    const service: Omit<Service, "consume"> = {
      createQueue,
      ensureQueue,
      listQueues,
      getQueue,
      updateQueue,
      deleteQueue,
      purgeQueue,
      send,
      sendBatch,
      read,
      delete: (queue, lease) => single(deleteLeases(queue, [lease], true)),
      deleteBatch: (queue, leases) => deleteLeases(queue, leases, false),
      archive: (queue, lease) => single(archiveLeases(queue, [lease], true)),
      archiveBatch: (queue, leases) => archiveLeases(queue, leases, false),
      extendVisibility: (queue, lease, options = {}) => single(extendLeases(queue, [lease], options, true)),
      extendVisibilityBatch: (queue, leases, options = {}) => extendLeases(queue, leases, options, false),
      release: (queue, lease, options = {}) =>
        single(
          Effect.map(releaseLeases(queue, [lease], options, true), (outcomes) => outcomes[0] ?? "released")
        ),
      releaseBatch: (queue, leases, options = {}) => releaseLeases(queue, leases, options, false),
      listArchive,
      deadLetters,
      requeueDead,
      metrics,
      metricsAll,
      registerWorker,
      listWorkers,
      maintain
    }
    return { ...service, consume: Consumer.make({ ...service, queueName, wakeups }) }
  })

/** Checks settings; the columns to write (absent settings stay undefined). */
const validateSettings = (settings: SettingsOptions): Effect.Effect<Store.SettingsColumns, InvalidOption> =>
  Effect.gen(function* () {
    const visibility_timeout_ms =
      settings.visibilityTimeout === undefined
        ? undefined
        : yield* duration("visibilityTimeout", settings.visibilityTimeout, {
            min: 1,
            max: maxVisibilityTimeoutMs
          })
    const max_deliveries =
      settings.maxDeliveries === undefined
        ? undefined
        : yield* integer("maxDeliveries", settings.maxDeliveries, { min: 1, max: maxMaxDeliveries })
    const retention_ms =
      settings.retention === undefined
        ? undefined
        : yield* duration("retention", settings.retention, { min: 0, max: maxRetentionMs })
    return { visibility_timeout_ms, max_deliveries, retention_ms }
  })

/** Every way building the layer can fail. */
export type LayerError = Migrations.MigrationError | InvalidOption

/**
 * The service as a layer over the `SqlClient` and `Backend` in context. Runs the queue's
 * migrations first (safe when many processes start at once).
 */
export const layer = (
  config: QueueConfig = {}
): Layer.Layer<Queue, LayerError, SqlClient.SqlClient | Backend.Backend> =>
  Layer.effect(Queue, Effect.zipRight(Migrations.run(migrations), make(config)))

/**
 * `layer` configured from the environment: `KEEL_QUEUE_MAX_PAYLOAD_BYTES`,
 * `KEEL_QUEUE_VISIBILITY_TIMEOUT`, `KEEL_QUEUE_MAX_DELIVERIES`, `KEEL_QUEUE_RETENTION` (durations
 * like `30 seconds`) and `KEEL_QUEUE_NOTIFY`; missing ones keep their defaults.
 */
export const layerConfig: Layer.Layer<
  Queue,
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
