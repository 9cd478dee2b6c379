/**
 * Queues, the archive, dead letters and metrics: input checked, one store operation, rows turned
 * into the package's Schema classes.
 */
import * as Batch from "@keel/sql/Batch"
import * as Clock from "effect/Clock"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Metrics from "../Metrics.js"
import { ArchiveQuery, RequeueOptions, SettingsOptions } from "../Options.js"
import { type InvalidOption, QueueAlreadyExists, QueueInFlight, QueueNotFound } from "../QueueError.js"
import type * as QueueStore from "../QueueStore.js"
import {
  ArchivedMessage,
  MessageId,
  maxBatchSize,
  parseQueueName,
  QueueInfo,
  QueueMetrics,
  QueueName,
  Removed
} from "../Schemas.js"
import { decoder } from "./optionSchema.js"

/** A name read back from the database (validated on the way in). */
const storedName = (name: string): QueueName => QueueName.make(name, true)

/** A stored queue as `QueueInfo`. */
export const toQueueInfo = (row: QueueStore.QueueRow): QueueInfo =>
  new QueueInfo(
    {
      name: storedName(row.name),
      visibilityTimeout: Duration.millis(row.visibilityTimeoutMs),
      maxDeliveries: row.maxDeliveries,
      retention: Duration.millis(row.retentionMs),
      concurrencyLimit: row.concurrencyLimit,
      rateLimit:
        row.rateLimit === null || row.rateIntervalMs === null
          ? null
          : { limit: row.rateLimit, interval: Duration.millis(row.rateIntervalMs) },
      groupConcurrency: row.groupConcurrency,
      groupOnDead: row.groupBlockOnDead ? "block" : "skip",
      events: row.events,
      createdAt: DateTime.unsafeMake(row.createdAt),
      updatedAt: DateTime.unsafeMake(row.updatedAt)
    },
    true
  )

const decodeSettings = decoder(SettingsOptions)
const decodeArchiveQuery = decoder(ArchiveQuery)
const decodeRequeueOptions = decoder(RequeueOptions)

/** Checks settings; the ones given (absent ones stay undefined). */
export const validateSettings = (
  settings: SettingsOptions
): Either.Either<Partial<QueueStore.Settings>, InvalidOption> =>
  Either.map(decodeSettings(settings), settingsOf)

/** Decoded settings as the store's columns; absent ones stay undefined. */
export const settingsOf = (given: typeof SettingsOptions.Type): Partial<QueueStore.Settings> => ({
  visibilityTimeoutMs: given.visibilityTimeout,
  maxDeliveries: given.maxDeliveries,
  retentionMs: given.retention,
  concurrencyLimit: given.concurrencyLimit,
  rateLimit: given.rateLimit === undefined ? undefined : (given.rateLimit?.limit ?? null),
  rateIntervalMs: given.rateLimit === undefined ? undefined : (given.rateLimit?.interval ?? null),
  groupConcurrency: given.groupConcurrency,
  groupBlockOnDead: given.groupOnDead === undefined ? undefined : given.groupOnDead === "block",
  events: given.events
})

/** The settings given, the rest from `defaults`. */
export const withDefaults = (
  given: Partial<QueueStore.Settings>,
  defaults: QueueStore.Settings
): QueueStore.Settings => ({
  visibilityTimeoutMs: given.visibilityTimeoutMs ?? defaults.visibilityTimeoutMs,
  maxDeliveries: given.maxDeliveries ?? defaults.maxDeliveries,
  retentionMs: given.retentionMs ?? defaults.retentionMs,
  concurrencyLimit: given.concurrencyLimit === undefined ? defaults.concurrencyLimit : given.concurrencyLimit,
  rateLimit: given.rateLimit === undefined ? defaults.rateLimit : given.rateLimit,
  rateIntervalMs: given.rateIntervalMs === undefined ? defaults.rateIntervalMs : given.rateIntervalMs,
  groupConcurrency: given.groupConcurrency ?? defaults.groupConcurrency,
  groupBlockOnDead: given.groupBlockOnDead ?? defaults.groupBlockOnDead,
  events: given.events ?? defaults.events
})

const uniqueNumbers = (values: ReadonlyArray<number>): ReadonlyArray<number> => [...new Set(values)]

/** Queue administration over `store`; queues created without settings get `defaults`. */
export const make = (store: QueueStore.Store, defaults: QueueStore.Settings) => {
  const existing = (name: QueueName) =>
    Effect.flatMap(store.findQueue(name), (row) =>
      row === undefined ? Effect.fail(new QueueNotFound({ queue: name })) : Effect.succeed(row)
    )

  const createOrEnsure = (name: string, settings: SettingsOptions, ensure: boolean) =>
    Effect.gen(function* () {
      const valid = yield* parseQueueName(name)
      const given = yield* validateSettings(settings)
      const { queue, created } = yield* store.createQueue(
        valid,
        withDefaults(given, defaults),
        yield* Clock.currentTimeMillis
      )
      if (!created && !ensure) return yield* new QueueAlreadyExists({ queue: valid })
      return toQueueInfo(queue)
    })

  const toArchived = (queue: QueueName) => (row: QueueStore.ArchiveRow) =>
    new ArchivedMessage(
      {
        id: MessageId.make(row.id, true),
        queue,
        payload: JSON.parse(row.payload),
        priority: row.priority,
        deliveries: row.deliveries,
        enqueuedAt: DateTime.unsafeMake(row.enqueuedAt),
        archivedAt: DateTime.unsafeMake(row.archivedAt),
        dead: row.dead,
        cancelled: row.cancelled,
        lastError: row.lastError
      },
      true
    )

  const listArchive = (queue: string, query: ArchiveQuery = {}) =>
    Effect.gen(function* () {
      const valid = yield* parseQueueName(queue)
      const checked = yield* decodeArchiveQuery(query)
      const rows = yield* store.listArchive(valid, {
        dead: checked.dead,
        limit: checked.limit ?? 100,
        before: checked.before
      })
      if (rows === undefined) return yield* new QueueNotFound({ queue: valid })
      return rows.map(toArchived(valid))
    })

  /** Acts on dead letters (these ids, or the oldest `limit`); the ids acted on. */
  const onDead = <E>(
    queue: string,
    options: RequeueOptions,
    act: (
      queue: QueueName,
      selection: { readonly ids: ReadonlyArray<number> | undefined; readonly limit: number }
    ) => Effect.Effect<ReadonlyArray<number> | undefined, E>
  ) =>
    Effect.gen(function* () {
      const valid = yield* parseQueueName(queue)
      if (options.ids !== undefined) yield* Batch.validate(options.ids, maxBatchSize)
      const { limit = maxBatchSize, ids } = yield* decodeRequeueOptions(options)
      const done = yield* act(valid, { ids: ids === undefined ? undefined : uniqueNumbers(ids), limit })
      if (done === undefined) return yield* new QueueNotFound({ queue: valid })
      return done.map((id) => MessageId.make(id, true))
    })

  const toMetrics = (at: number) => (row: QueueStore.MetricsRow) =>
    new QueueMetrics(
      {
        queue: storedName(row.name),
        depth: row.depth,
        inFlight: row.inFlight,
        delayed: row.delayed,
        oldestMessageAgeMs: row.oldest === null ? null : Math.max(0, at - row.oldest),
        archived: row.archived,
        dead: row.dead,
        measuredAt: DateTime.unsafeMake(at)
      },
      true
    )

  return {
    createQueue: (name: string, settings: SettingsOptions = {}) => createOrEnsure(name, settings, false),
    ensureQueue: (name: string, settings: SettingsOptions = {}) =>
      Effect.catchTag(createOrEnsure(name, settings, true), "QueueAlreadyExists", (error) =>
        Effect.die(error)
      ),
    listQueues: Effect.map(store.listQueues, (rows) => rows.map(toQueueInfo)),
    getQueue: (name: string) =>
      Effect.flatMap(parseQueueName(name), (valid) => Effect.map(existing(valid), toQueueInfo)),
    updateQueue: (name: string, settings: SettingsOptions) =>
      Effect.gen(function* () {
        const valid = yield* parseQueueName(name)
        const changes = yield* validateSettings(settings)
        const row = yield* store.updateQueue(valid, changes, yield* Clock.currentTimeMillis)
        if (row === undefined) return yield* new QueueNotFound({ queue: valid })
        return toQueueInfo(row)
      }),
    deleteQueue: (name: string, options: { readonly force?: boolean | undefined } = {}) =>
      Effect.gen(function* () {
        const valid = yield* parseQueueName(name)
        const now = yield* Clock.currentTimeMillis
        const deleted = yield* store.deleteQueue(valid, { force: options.force === true, now })
        if (deleted === undefined) return yield* new QueueNotFound({ queue: valid })
        if (deleted._tag === "InFlight")
          return yield* new QueueInFlight({ queue: valid, inFlight: deleted.inFlight })
        return new Removed({ messages: deleted.messages, archived: deleted.archived })
      }),
    purgeQueue: (name: string, options: { readonly archive?: boolean | undefined } = {}) =>
      Effect.gen(function* () {
        const valid = yield* parseQueueName(name)
        const purged = yield* store.purgeQueue(valid, { archive: options.archive === true })
        if (purged === undefined) return yield* new QueueNotFound({ queue: valid })
        return new Removed(purged)
      }),
    listArchive,
    deadLetters: (queue: string, query: Omit<ArchiveQuery, "dead"> = {}) =>
      listArchive(queue, { ...query, dead: true }),
    requeueDead: (queue: string, options: RequeueOptions = {}) =>
      onDead(queue, options, (valid, selection) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => store.requeueDead(valid, selection, now))
      ),
    deleteDead: (queue: string, options: RequeueOptions = {}) =>
      onDead(queue, options, (valid, selection) => store.deleteDead(valid, selection)),
    metrics: (queue: string) =>
      Effect.gen(function* () {
        const valid = yield* parseQueueName(queue)
        const at = yield* Clock.currentTimeMillis
        const row = (yield* store.metrics([valid], at))[0]
        if (row === undefined) return yield* new QueueNotFound({ queue: valid })
        const result = toMetrics(at)(row)
        yield* Metrics.record(result)
        return result
      }),
    metricsAll: Effect.gen(function* () {
      const at = yield* Clock.currentTimeMillis
      const result = (yield* store.metrics(undefined, at)).map(toMetrics(at))
      yield* Effect.forEach(result, Metrics.record, { discard: true })
      return result
    })
  }
}
