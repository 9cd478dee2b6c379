/**
 * The queue's SQL, one function per statement, per dialect where they differ. Every value is a
 * bind parameter; the only text that varies is chosen from constants here. Callers decide the
 * transaction each statement runs in; nothing here begins, commits or retries.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { Row } from "@effect/sql/SqlConnection"
import type { SqlError } from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import { Batch } from "@keel/sql"
import { Effect, Either, Predicate, Schema } from "effect"

/** A boolean as SQLite (0/1) or PostgreSQL (true/false) returns it. */
const DbBoolean = Schema.Union(
  Schema.Boolean,
  Schema.transform(Schema.Number, Schema.Boolean, {
    strict: true,
    decode: (n) => n !== 0,
    encode: (b) => (b ? 1 : 0)
  })
)

/** A row of `keel_queue_queues`. */
export const QueueRow = Schema.Struct({
  id: Schema.Number,
  name: Schema.String,
  visibility_timeout_ms: Schema.Number,
  max_deliveries: Schema.Number,
  retention_ms: Schema.Number,
  created_at: Schema.Number,
  updated_at: Schema.Number
})
/** A decoded queue row. */
export type QueueRow = typeof QueueRow.Type

const ReadyRow = Schema.Struct({ ...QueueRow.fields, ready: DbBoolean })

/** A message row as `read` selects it. */
export const CandidateRow = Schema.Struct({
  id: Schema.Number,
  payload: Schema.String,
  priority: Schema.Number,
  enqueued_at: Schema.Number,
  deliveries: Schema.Number,
  last_error: Schema.NullOr(Schema.String)
})
/** A decoded candidate row. */
export type CandidateRow = typeof CandidateRow.Type

/**
 * A row of `leaseNext`: the queue, how many messages were dead-lettered, and one leased message
 * (all message columns null when none was leased).
 */
export const LeasedRow = Schema.Struct({
  queue_id: Schema.Number,
  dead: Schema.Number,
  id: Schema.NullOr(Schema.Number),
  payload: Schema.NullOr(Schema.String),
  priority: Schema.NullOr(Schema.Number),
  enqueued_at: Schema.NullOr(Schema.Number),
  deliveries: Schema.NullOr(Schema.Number),
  last_error: Schema.NullOr(Schema.String),
  visible_at: Schema.NullOr(Schema.Number)
})
/** A decoded `leaseNext` row. */
export type LeasedRow = typeof LeasedRow.Type

/** The lease state of a message, as acknowledgements check it. */
export const LeaseRow = Schema.Struct({
  id: Schema.Number,
  lease_token: Schema.NullOr(Schema.String),
  deliveries: Schema.Number
})
/** A decoded lease row. */
export type LeaseRow = typeof LeaseRow.Type

/** A row of `keel_queue_archive`. */
export const ArchiveRow = Schema.Struct({
  id: Schema.Number,
  payload: Schema.String,
  priority: Schema.Number,
  deliveries: Schema.Number,
  enqueued_at: Schema.Number,
  archived_at: Schema.Number,
  dead: DbBoolean,
  last_error: Schema.NullOr(Schema.String)
})
/** A decoded archive row. */
export type ArchiveRow = typeof ArchiveRow.Type

/** Counts of one queue. */
export const MetricsRow = Schema.Struct({
  name: Schema.String,
  depth: Schema.Number,
  in_flight: Schema.Number,
  delayed: Schema.Number,
  oldest: Schema.NullOr(Schema.Number),
  archived: Schema.Number,
  dead: Schema.Number
})
/** A decoded metrics row. */
export type MetricsRow = typeof MetricsRow.Type

/** A row of `keel_queue_workers`. */
export const WorkerRow = Schema.Struct({
  id: Schema.String,
  queue: Schema.NullOr(Schema.String),
  host: Schema.String,
  pid: Schema.Number,
  started_at: Schema.Number,
  heartbeat_at: Schema.Number
})
/** A decoded worker row. */
export type WorkerRow = typeof WorkerRow.Type

const KeyRow = Schema.Struct({
  queue_id: Schema.Number,
  dedup_key: Schema.String,
  message_id: Schema.NullOr(Schema.Number)
})
const CountRow = Schema.Struct({ n: Schema.Number })
const InsertedRow = Schema.Struct({ id: Schema.Number, queue_id: Schema.Number })

/**
 * A decoder of driver rows, built once (building a parser per call costs more than the statement).
 * A row of the wrong shape is a bug in this module, so it is a defect.
 */
const decoder = <A, I>(schema: Schema.Schema<A, I>) => {
  const decode = Schema.decodeUnknownEither(Schema.Array(schema))
  return (rows: ReadonlyArray<unknown>): Effect.Effect<ReadonlyArray<A>> =>
    Either.match(decode(rows), { onLeft: (error) => Effect.die(error), onRight: Effect.succeed })
}

const decodeQueues = decoder(QueueRow)
const decodeReady = decoder(ReadyRow)
const decodeCandidates = decoder(CandidateRow)
const decodeLeases = decoder(LeaseRow)
const decodeLeased = decoder(LeasedRow)
const decodeArchive = decoder(ArchiveRow)
const decodeMetrics = decoder(MetricsRow)
const decodeWorkers = decoder(WorkerRow)
const decodeKeys = decoder(KeyRow)
const decodeCounts = decoder(CountRow)
const decodeInserted = decoder(InsertedRow)

/** The `id` column of rows (RETURNING id). */
const idsOf = (rows: ReadonlyArray<unknown>): ReadonlyArray<number> =>
  rows.map((row) => (Predicate.hasProperty(row, "id") ? Number(row.id) : Number.NaN))

const count = (rows: ReadonlyArray<unknown>): Effect.Effect<number> =>
  Effect.map(decodeCounts(rows), (decoded) => decoded[0]?.n ?? 0)

/** The last error of a message dead-lettered without one: it was never acknowledged in time. */
const exhausted = { prefix: "not acknowledged after ", suffix: " deliveries" } as const

/** The error recorded for a message dead-lettered after `maxDeliveries` unacknowledged deliveries. */
export const exhaustedError = (maxDeliveries: number): string =>
  `${exhausted.prefix}${maxDeliveries}${exhausted.suffix}`

/** A message to insert. */
export interface NewMessage {
  readonly payload: string
  readonly priority: number
  readonly availableAt: number
}

/** A worker to register. */
export interface NewWorker {
  readonly id: string
  readonly queueId: number | null
  readonly host: string
  readonly pid: number
  readonly now: number
  readonly timeoutMs: number
}

/** Settings columns to write. */
export interface SettingsColumns {
  readonly visibility_timeout_ms?: number | undefined
  readonly max_deliveries?: number | undefined
  readonly retention_ms?: number | undefined
}

/** The PostgreSQL channel a queue's producers notify and its consumers listen on. */
export const channel = (queueId: number): string => `keel_queue_${queueId}`

/**
 * The statements. `notifyInSql`: on PostgreSQL a send notifies with `pg_notify` inside its own
 * statement, so the signal is delivered exactly when the send commits, at no extra round trip.
 */
export const make = (sql: SqlClient.SqlClient, options: { readonly notifyInSql: boolean }) => {
  const pg = sql.onDialectOrElse({ pg: () => true, orElse: () => false })
  const forUpdate: Statement.Fragment = pg ? sql.literal("FOR UPDATE") : sql.literal("")
  const forUpdateSkipLocked: Statement.Fragment = pg ? sql.literal("FOR UPDATE SKIP LOCKED") : sql.literal("")
  const isTrue: Statement.Fragment = sql.literal(pg ? "TRUE" : "1")
  const isFalse: Statement.Fragment = sql.literal(pg ? "FALSE" : "0")
  const least = (a: Statement.Fragment, b: number): Statement.Fragment =>
    pg ? sql`LEAST(${a}, ${b})` : sql`MIN(${a}, ${b})`

  /** Runs `statement` over `items` in chunks under the parameter limit. */
  const chunked = <A, B>(
    items: ReadonlyArray<A>,
    parametersPerItem: number,
    statement: (chunk: ReadonlyArray<A>) => Effect.Effect<ReadonlyArray<B>, SqlError>
  ) => Batch.forEachChunk(items, { parametersPerItem, fixedParameters: 8 }, statement)

  // ---- queues -------------------------------------------------------------------------------

  const insertQueue = (
    name: string,
    settings: Required<SettingsColumns>,
    now: number
  ): Effect.Effect<ReadonlyArray<QueueRow>, SqlError> =>
    Effect.flatMap(
      sql`INSERT INTO keel_queue_queues ${sql.insert({
        name,
        visibility_timeout_ms: settings.visibility_timeout_ms,
        max_deliveries: settings.max_deliveries,
        retention_ms: settings.retention_ms,
        created_at: now,
        updated_at: now
      })} ON CONFLICT (name) DO NOTHING RETURNING *`,
      decodeQueues
    )

  const findQueue = (name: string) =>
    Effect.flatMap(sql`SELECT * FROM keel_queue_queues WHERE name = ${name}`, decodeQueues)

  const listQueues = Effect.flatMap(sql`SELECT * FROM keel_queue_queues ORDER BY name`, decodeQueues)

  const updateQueue = (name: string, settings: SettingsColumns, now: number) => {
    const changes: Record<string, number> = { updated_at: now }
    for (const [column, value] of Object.entries(settings)) if (value !== undefined) changes[column] = value
    return Effect.flatMap(
      sql`UPDATE keel_queue_queues SET ${sql.update(changes)} WHERE name = ${name} RETURNING *`,
      decodeQueues
    )
  }

  const deleteQueue = (queueId: number) => sql`DELETE FROM keel_queue_queues WHERE id = ${queueId}`

  const inFlight = (queueId: number, now: number) =>
    Effect.flatMap(
      sql`SELECT COUNT(*) AS n FROM keel_queue_messages
          WHERE queue_id = ${queueId} AND lease_token IS NOT NULL AND available_at > ${now}`,
      count
    )

  /** Deletes every message of a queue and counts them (exactly, even with concurrent sends on pg). */
  const purgeMessages = (queueId: number) =>
    pg
      ? Effect.flatMap(
          sql`WITH d AS (DELETE FROM keel_queue_messages WHERE queue_id = ${queueId} RETURNING 1)
              SELECT COUNT(*) AS n FROM d`,
          count
        )
      : Effect.zipRight(
          sql`DELETE FROM keel_queue_messages WHERE queue_id = ${queueId}`,
          Effect.flatMap(sql`SELECT changes() AS n`, count)
        )

  const purgeArchive = (queueId: number) =>
    pg
      ? Effect.flatMap(
          sql`WITH d AS (DELETE FROM keel_queue_archive WHERE queue_id = ${queueId} RETURNING 1)
              SELECT COUNT(*) AS n FROM d`,
          count
        )
      : Effect.zipRight(
          sql`DELETE FROM keel_queue_archive WHERE queue_id = ${queueId}`,
          Effect.flatMap(sql`SELECT changes() AS n`, count)
        )

  const purgeKeysOf = (queueId: number) => sql`DELETE FROM keel_queue_dedup_keys WHERE queue_id = ${queueId}`

  // ---- sends ----------------------------------------------------------------------------------

  /**
   * Inserts one message into the queue named `name` in one statement (the queue id is looked up
   * inside it); no row when the queue does not exist. `execute` runs the statement (the caller
   * picks its transaction: `Transaction.single`, or plain execution inside one).
   */
  const insertOne = <E, R>(
    name: string,
    message: NewMessage,
    now: number,
    execute: (statement: Statement.Statement<Row>) => Effect.Effect<ReadonlyArray<unknown>, E, R>
  ) => {
    const insert = sql`INSERT INTO keel_queue_messages (queue_id, payload, priority, enqueued_at, available_at)
      SELECT id, CAST(${message.payload} AS TEXT), CAST(${message.priority} AS INTEGER),
             CAST(${now} AS BIGINT), CAST(${message.availableAt} AS BIGINT)
      FROM keel_queue_queues WHERE name = ${name}
      RETURNING id, queue_id`
    return Effect.flatMap(
      execute(
        options.notifyInSql
          ? sql`WITH m AS (${insert}) SELECT id, queue_id, pg_notify('keel_queue_' || queue_id, ${name}) FROM m`
          : insert
      ),
      decodeInserted
    )
  }

  /** Inserts messages into a queue; their ids in input order (ids ascend in insertion order). */
  const insertMany = (queueId: number, name: string, messages: ReadonlyArray<NewMessage>, now: number) =>
    Effect.gen(function* () {
      const inserted = yield* chunked(messages, 5, (chunk) =>
        Effect.map(
          sql`INSERT INTO keel_queue_messages ${sql.insert(
            chunk.map((message) => ({
              queue_id: queueId,
              payload: message.payload,
              priority: message.priority,
              enqueued_at: now,
              available_at: message.availableAt
            }))
          )} RETURNING id`,
          (rows) => [...idsOf(rows)].sort((a, b) => a - b)
        )
      )
      if (options.notifyInSql && messages.length > 0) {
        yield* sql`SELECT pg_notify(${channel(queueId)}, ${name})`
      }
      return inserted
    })

  /** Inserts idempotency keys that are new; returns the keys that were inserted. */
  const insertKeys = (queueId: number, keys: ReadonlyArray<string>, now: number) =>
    Effect.map(
      chunked(
        keys,
        3,
        (chunk) =>
          sql<{ dedup_key: string }>`INSERT INTO keel_queue_dedup_keys ${sql.insert(
            chunk.map((key) => ({ queue_id: queueId, dedup_key: key, created_at: now }))
          )} ON CONFLICT (queue_id, dedup_key) DO NOTHING RETURNING dedup_key`
      ),
      (rows) => new Set(rows.map((row) => String(row.dedup_key)))
    )

  /** Records the message each new key names. */
  const setKeyMessages = (queueId: number, pairs: ReadonlyArray<readonly [string, number]>) =>
    chunked(pairs, 3, (chunk) =>
      Effect.as(
        sql`UPDATE keel_queue_dedup_keys
            SET message_id = CASE dedup_key ${sql.join(
              " ",
              false
            )(chunk.map(([key, id]) => sql`WHEN ${key} THEN CAST(${id} AS BIGINT)`))} END
            WHERE queue_id = ${queueId} AND ${sql.in(
              "dedup_key",
              chunk.map(([key]) => key)
            )}`,
        []
      )
    )

  /** The queue and message each key names, looked up by queue name (null message: not yet known). */
  const selectKeys = (name: string, keys: ReadonlyArray<string>) =>
    Effect.map(
      chunked(keys, 1, (chunk) =>
        Effect.flatMap(
          sql`SELECT k.queue_id, k.dedup_key, k.message_id FROM keel_queue_dedup_keys k
              WHERE k.queue_id = (SELECT id FROM keel_queue_queues WHERE name = ${name})
                AND ${sql.in("k.dedup_key", chunk)}`,
          decodeKeys
        )
      ),
      (rows) => new Map(rows.map((row) => [row.dedup_key, row] as const))
    )

  // ---- reads ----------------------------------------------------------------------------------

  /** The queue and whether any of its messages is visible now, without taking a write lock. */
  const readyCheck = (name: string, now: number) =>
    Effect.flatMap(
      sql`SELECT q.*, EXISTS (
            SELECT 1 FROM keel_queue_messages m WHERE m.queue_id = q.id AND m.available_at <= ${now}
          ) AS ready
          FROM keel_queue_queues q WHERE q.name = ${name}`,
      decodeReady
    )

  /** The next visible messages, locked (skipping rows other transactions hold on PostgreSQL). */
  const selectCandidates = (queueId: number, now: number, limit: number) =>
    Effect.flatMap(
      sql`SELECT id, payload, priority, enqueued_at, deliveries, last_error FROM keel_queue_messages
          WHERE queue_id = ${queueId} AND available_at <= ${now}
          ORDER BY priority, available_at, id
          LIMIT ${limit} ${forUpdateSkipLocked}`,
      decodeCandidates
    )

  const lease = (
    messageIds: ReadonlyArray<number>,
    lease: {
      readonly token: string
      readonly workerId: string | null
      readonly now: number
      readonly until: number
    }
  ) =>
    chunked(messageIds, 1, (chunk) =>
      Effect.as(
        sql`UPDATE keel_queue_messages
            SET lease_token = ${lease.token}, leased_by = ${lease.workerId}, leased_at = ${lease.now},
                available_at = ${lease.until}, deliveries = deliveries + 1
            WHERE ${sql.in("id", chunk)}`,
        []
      )
    )

  /**
   * PostgreSQL dialect, one statement: in the named queue, takes up to `limit` visible messages in
   * `selectCandidates` order, skipping rows other transactions hold (`FOR UPDATE SKIP LOCKED`);
   * moves those that already had the queue's max deliveries to the archive as dead (as `read` does
   * with `archiveMessages`), and leases the others exactly as `lease` does, until `now` plus
   * `visibilityMs` (or the queue's visibility timeout). Returns one row per leased message in that
   * order, or one row with null message columns when none was leased, or no row when the queue
   * does not exist.
   */
  const leaseNext = (
    name: string,
    limit: number,
    lease: {
      readonly token: string
      readonly workerId: string | null
      readonly now: number
      readonly visibilityMs: number | null
    }
  ) =>
    Effect.flatMap(
      sql`WITH q AS (
            SELECT id, visibility_timeout_ms, max_deliveries FROM keel_queue_queues WHERE name = ${name}
          ),
          c AS (
            SELECT m.id, m.priority, m.available_at, m.deliveries >= q.max_deliveries AS exhausted
            FROM keel_queue_messages m JOIN q ON m.queue_id = q.id
            WHERE m.available_at <= ${lease.now}
            ORDER BY m.priority, m.available_at, m.id
            LIMIT ${limit}
            FOR UPDATE OF m SKIP LOCKED
          ),
          d AS (
            DELETE FROM keel_queue_messages m USING c
            WHERE m.id = c.id AND c.exhausted
            RETURNING m.id, m.queue_id, m.payload, m.priority, m.enqueued_at, m.deliveries, m.last_error
          ),
          a AS (
            INSERT INTO keel_queue_archive
              (id, queue_id, payload, priority, enqueued_at, deliveries, dead, last_error, archived_at)
            SELECT d.id, d.queue_id, d.payload, d.priority, d.enqueued_at, d.deliveries, TRUE,
                   COALESCE(d.last_error, CAST(${exhausted.prefix} AS TEXT) || q.max_deliveries
                            || CAST(${exhausted.suffix} AS TEXT)),
                   CAST(${lease.now} AS BIGINT)
            FROM d CROSS JOIN q
            RETURNING id
          ),
          u AS (
            UPDATE keel_queue_messages m
            SET lease_token = ${lease.token}, leased_by = ${lease.workerId},
                leased_at = CAST(${lease.now} AS BIGINT),
                available_at = CAST(${lease.now} AS BIGINT)
                  + COALESCE(CAST(${lease.visibilityMs} AS BIGINT), q.visibility_timeout_ms),
                deliveries = m.deliveries + 1
            FROM c, q
            WHERE m.id = c.id AND NOT c.exhausted
            RETURNING m.id, m.payload, m.priority, m.enqueued_at, m.deliveries - 1 AS deliveries,
                      m.last_error, m.available_at AS visible_at, c.available_at AS candidate_at
          )
          SELECT q.id AS queue_id, (SELECT COUNT(*) FROM a) AS dead,
                 u.id, u.payload, u.priority, u.enqueued_at, u.deliveries, u.last_error, u.visible_at
          FROM q LEFT JOIN u ON TRUE
          ORDER BY u.priority, u.candidate_at, u.id`,
      decodeLeased
    )

  // ---- acknowledgements -----------------------------------------------------------------------

  /** The lease state of messages of the named queue, locked on PostgreSQL until the transaction ends. */
  const selectLeases = (name: string, messageIds: ReadonlyArray<number>) =>
    chunked(messageIds, 1, (chunk) =>
      Effect.flatMap(
        sql`SELECT id, lease_token, deliveries FROM keel_queue_messages
            WHERE queue_id = (SELECT id FROM keel_queue_queues WHERE name = ${name})
              AND ${sql.in("id", chunk)} ${forUpdate}`,
        decodeLeases
      )
    )

  const deleteMessages = (messageIds: ReadonlyArray<number>) =>
    chunked(messageIds, 1, (chunk) =>
      Effect.as(sql`DELETE FROM keel_queue_messages WHERE ${sql.in("id", chunk)}`, [])
    )

  /**
   * Moves messages to the archive (dead or not) and deletes them from the queue. `error`, when
   * given, replaces the message's last error; `fallbackError` is recorded when there is none;
   * `undo` subtracts deliveries that never happened.
   */
  const archiveMessages = (
    messageIds: ReadonlyArray<number>,
    archive: {
      readonly dead: boolean
      readonly now: number
      readonly error: string | null
      readonly fallbackError: string | null
      readonly undo: number
    }
  ) =>
    chunked(messageIds, 1, (chunk) =>
      Effect.zipRight(
        sql`INSERT INTO keel_queue_archive
              (id, queue_id, payload, priority, enqueued_at, deliveries, dead, last_error, archived_at)
            SELECT id, queue_id, payload, priority, enqueued_at, deliveries - ${archive.undo},
                   ${archive.dead ? isTrue : isFalse}, COALESCE(${archive.error}, last_error, ${archive.fallbackError}), ${archive.now}
            FROM keel_queue_messages WHERE ${sql.in("id", chunk)}`,
        Effect.as(sql`DELETE FROM keel_queue_messages WHERE ${sql.in("id", chunk)}`, [])
      )
    )

  /**
   * PostgreSQL dialect, one statement: deletes message `id` of the named queue if `token` still
   * leases it. Returns its id, or nothing when the lease is lost (or the message or queue is gone).
   * The row is locked and the condition re-checked on its newest version, so a lease that moved on
   * concurrently is never deleted.
   */
  const deleteLeased = (name: string, id: number, token: string) =>
    Effect.map(
      sql`DELETE FROM keel_queue_messages
          WHERE id = ${id} AND lease_token = ${token}
            AND queue_id = (SELECT id FROM keel_queue_queues WHERE name = ${name})
          RETURNING id`,
      idsOf
    )

  /**
   * PostgreSQL dialect, one statement: moves message `id` of the named queue to the archive (not
   * dead, last error kept) if `token` still leases it — `archiveMessages` with `dead: false`, no
   * error and no undo, under the same lease check as `deleteLeased`. Returns its id, or nothing.
   */
  const archiveLeased = (name: string, id: number, token: string, now: number) =>
    Effect.map(
      sql`WITH moved AS (
            DELETE FROM keel_queue_messages
            WHERE id = ${id} AND lease_token = ${token}
              AND queue_id = (SELECT id FROM keel_queue_queues WHERE name = ${name})
            RETURNING id, queue_id, payload, priority, enqueued_at, deliveries, last_error
          )
          INSERT INTO keel_queue_archive
            (id, queue_id, payload, priority, enqueued_at, deliveries, dead, last_error, archived_at)
          SELECT id, queue_id, payload, priority, enqueued_at, deliveries, ${isFalse}, last_error,
                 CAST(${now} AS BIGINT)
          FROM moved
          RETURNING id`,
      idsOf
    )

  const releaseMessages = (
    messageIds: ReadonlyArray<number>,
    release: { readonly availableAt: number; readonly error: string | null }
  ) =>
    chunked(messageIds, 1, (chunk) =>
      Effect.as(
        sql`UPDATE keel_queue_messages
            SET lease_token = NULL, leased_by = NULL, leased_at = NULL, available_at = ${release.availableAt},
                last_error = COALESCE(${release.error}, last_error)
            WHERE ${sql.in("id", chunk)}`,
        []
      )
    )

  const extendMessages = (messageIds: ReadonlyArray<number>, until: number) =>
    chunked(messageIds, 1, (chunk) =>
      Effect.as(sql`UPDATE keel_queue_messages SET available_at = ${until} WHERE ${sql.in("id", chunk)}`, [])
    )

  // ---- archive and dead letters ---------------------------------------------------------------

  const listArchive = (
    queueId: number,
    query: { readonly dead: boolean | undefined; readonly limit: number; readonly before: number | undefined }
  ) => {
    const conditions = [sql`queue_id = ${queueId}`]
    if (query.dead !== undefined) conditions.push(sql`dead = ${query.dead ? isTrue : isFalse}`)
    if (query.before !== undefined) conditions.push(sql`id < ${query.before}`)
    return Effect.flatMap(
      sql`SELECT id, payload, priority, deliveries, enqueued_at, archived_at, dead, last_error
          FROM keel_queue_archive WHERE ${sql.and(conditions)} ORDER BY id DESC LIMIT ${query.limit}`,
      decodeArchive
    )
  }

  /** Moves dead letters back into the queue (same ids, deliveries reset); returns the ids moved. */
  const requeueDead = (
    queueId: number,
    selection: { readonly ids: ReadonlyArray<number> | undefined; readonly limit: number },
    now: number
  ) =>
    Effect.gen(function* () {
      const chosen =
        selection.ids === undefined
          ? idsOf(
              yield* sql`SELECT id FROM keel_queue_archive WHERE queue_id = ${queueId} AND dead = ${isTrue}
                         ORDER BY id LIMIT ${selection.limit} ${forUpdate}`
            )
          : yield* chunked(selection.ids, 1, (chunk) =>
              Effect.map(
                sql`SELECT id FROM keel_queue_archive
                    WHERE queue_id = ${queueId} AND dead = ${isTrue} AND ${sql.in("id", chunk)} ${forUpdate}`,
                idsOf
              )
            )
      yield* chunked(chosen, 1, (chunk) =>
        Effect.zipRight(
          sql`INSERT INTO keel_queue_messages
                (id, queue_id, payload, priority, enqueued_at, available_at, deliveries, last_error)
              SELECT id, queue_id, payload, priority, enqueued_at, ${now}, 0, last_error
              FROM keel_queue_archive WHERE ${sql.in("id", chunk)}`,
          Effect.as(sql`DELETE FROM keel_queue_archive WHERE ${sql.in("id", chunk)}`, [])
        )
      )
      if (options.notifyInSql && chosen.length > 0) {
        yield* sql`SELECT pg_notify(${channel(queueId)}, 'requeue')`
      }
      return [...chosen].sort((a, b) => a - b)
    })

  // ---- metrics --------------------------------------------------------------------------------

  /** Counts for the named queues (every queue when `names` is undefined). */
  const metrics = (names: ReadonlyArray<string> | undefined, now: number) =>
    Effect.flatMap(
      sql`SELECT q.name AS name,
            COALESCE(m.depth, 0) AS depth, COALESCE(m.in_flight, 0) AS in_flight,
            COALESCE(m.delayed, 0) AS delayed, m.oldest AS oldest,
            COALESCE(a.archived, 0) AS archived, COALESCE(a.dead, 0) AS dead
          FROM keel_queue_queues q
          LEFT JOIN (
            SELECT queue_id,
              COUNT(*) FILTER (WHERE available_at <= ${now}) AS depth,
              COUNT(*) FILTER (WHERE available_at > ${now} AND lease_token IS NOT NULL) AS in_flight,
              COUNT(*) FILTER (WHERE available_at > ${now} AND lease_token IS NULL) AS delayed,
              MIN(enqueued_at) AS oldest
            FROM keel_queue_messages GROUP BY queue_id
          ) m ON m.queue_id = q.id
          LEFT JOIN (
            SELECT queue_id,
              COUNT(*) FILTER (WHERE dead = ${isFalse}) AS archived,
              COUNT(*) FILTER (WHERE dead = ${isTrue}) AS dead
            FROM keel_queue_archive GROUP BY queue_id
          ) a ON a.queue_id = q.id
          ${names === undefined ? sql`` : sql`WHERE ${sql.in("q.name", names)}`}
          ORDER BY q.name`,
      decodeMetrics
    )

  const countArchive = (queueId: number) =>
    Effect.flatMap(sql`SELECT COUNT(*) AS n FROM keel_queue_archive WHERE queue_id = ${queueId}`, count)

  const countMessages = (queueId: number) =>
    Effect.flatMap(sql`SELECT COUNT(*) AS n FROM keel_queue_messages WHERE queue_id = ${queueId}`, count)

  // ---- workers and maintenance ----------------------------------------------------------------

  const insertWorker = (worker: NewWorker) =>
    Effect.map(
      sql`INSERT INTO keel_queue_workers ${sql.insert({
        id: worker.id,
        queue_id: worker.queueId,
        host: worker.host,
        pid: worker.pid,
        started_at: worker.now,
        heartbeat_at: worker.now,
        timeout_ms: worker.timeoutMs
      })} ON CONFLICT (id) DO NOTHING RETURNING 1 AS id`,
      idsOf
    )

  /** When a registered worker goes stale (heartbeat plus its timeout), locked on PostgreSQL. */
  const workerExpiry = (id: string) =>
    Effect.flatMap(
      sql`SELECT heartbeat_at + timeout_ms AS n FROM keel_queue_workers WHERE id = ${id} ${forUpdate}`,
      decodeCounts
    )

  const replaceWorker = (worker: NewWorker) =>
    sql`UPDATE keel_queue_workers
        SET queue_id = ${worker.queueId}, host = ${worker.host}, pid = ${worker.pid},
            started_at = ${worker.now}, heartbeat_at = ${worker.now}, timeout_ms = ${worker.timeoutMs}
        WHERE id = ${worker.id}`

  /** Records a heartbeat; no row when the worker was deregistered (declared stale) meanwhile. */
  const heartbeat = (id: string, now: number) =>
    Effect.map(
      sql`UPDATE keel_queue_workers SET heartbeat_at = ${now} WHERE id = ${id} RETURNING 1 AS id`,
      idsOf
    )

  const deleteWorkers = (workerIds: ReadonlyArray<string>) =>
    chunked(workerIds, 1, (chunk) =>
      Effect.as(sql`DELETE FROM keel_queue_workers WHERE ${sql.in("id", chunk)}`, [])
    )

  /** Releases every lease the workers hold: the messages are visible now (or when they already were). */
  const releaseLeasesOf = (workerIds: ReadonlyArray<string>, now: number) =>
    Effect.map(
      chunked(workerIds, 1, (chunk) =>
        Effect.map(
          sql`UPDATE keel_queue_messages
              SET lease_token = NULL, leased_by = NULL, leased_at = NULL,
                  available_at = ${least(sql`available_at`, now)}
              WHERE ${sql.in("leased_by", chunk)} AND lease_token IS NOT NULL
              RETURNING id`,
          idsOf
        )
      ),
      (released) => released.length
    )

  /** Workers whose heartbeat is older than their own timeout, locked on PostgreSQL. */
  const staleWorkers = (now: number) =>
    Effect.map(
      sql<{
        id: string
      }>`SELECT id FROM keel_queue_workers WHERE heartbeat_at + timeout_ms < ${now} ${forUpdate}`,
      (rows) => rows.map((row) => String(row.id))
    )

  const listWorkers = (name: string | undefined) =>
    Effect.flatMap(
      sql`SELECT w.id, q.name AS queue, w.host, w.pid, w.started_at, w.heartbeat_at
          FROM keel_queue_workers w LEFT JOIN keel_queue_queues q ON q.id = w.queue_id
          ${name === undefined ? sql`` : sql`WHERE q.name = ${name}`}
          ORDER BY w.started_at, w.id`,
      decodeWorkers
    )

  /**
   * Deletes up to `limit` archived (not dead) messages older than their queue's retention; returns
   * how many. Bounded, so one maintenance pass never holds the write lock for long.
   */
  const purgeExpiredArchive = (now: number, limit: number) =>
    Effect.map(
      sql`DELETE FROM keel_queue_archive WHERE id IN (
            SELECT a.id FROM keel_queue_archive a JOIN keel_queue_queues q ON q.id = a.queue_id
            WHERE a.dead = ${isFalse} AND a.archived_at < ${now} - q.retention_ms
            LIMIT ${limit}
          )
          RETURNING id`,
      (rows) => rows.length
    )

  /** Forgets up to `limit` idempotency keys older than their queue's retention whose message is gone. */
  const purgeExpiredKeys = (now: number, limit: number) =>
    Effect.map(
      sql`DELETE FROM keel_queue_dedup_keys
          WHERE (queue_id, dedup_key) IN (
            SELECT k.queue_id, k.dedup_key FROM keel_queue_dedup_keys k
            JOIN keel_queue_queues q ON q.id = k.queue_id
            WHERE k.created_at < ${now} - q.retention_ms
              AND NOT EXISTS (SELECT 1 FROM keel_queue_messages m WHERE m.id = k.message_id)
              AND NOT EXISTS (SELECT 1 FROM keel_queue_archive a WHERE a.id = k.message_id)
            LIMIT ${limit}
          )
          RETURNING queue_id`,
      (rows) => rows.length
    )

  return {
    insertQueue,
    findQueue,
    listQueues,
    updateQueue,
    deleteQueue,
    inFlight,
    purgeMessages,
    purgeArchive,
    purgeKeysOf,
    insertOne,
    insertMany,
    insertKeys,
    setKeyMessages,
    selectKeys,
    readyCheck,
    selectCandidates,
    lease,
    leaseNext,
    selectLeases,
    deleteMessages,
    archiveMessages,
    deleteLeased,
    archiveLeased,
    releaseMessages,
    extendMessages,
    listArchive,
    requeueDead,
    metrics,
    countArchive,
    countMessages,
    insertWorker,
    workerExpiry,
    replaceWorker,
    heartbeat,
    deleteWorkers,
    releaseLeasesOf,
    staleWorkers,
    listWorkers,
    purgeExpiredArchive,
    purgeExpiredKeys
  }
}

/** The statements of one database. */
export type Store = ReturnType<typeof make>
