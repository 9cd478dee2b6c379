/**
 * The queue's statements off the hot path: queues, the archive, dead letters, metrics, workers and
 * maintenance. Writes are plans run as whole transactions (re-run only when they provably rolled
 * back); reads are single statements (re-run after transient errors). Rows are decoded with the
 * package's Schemas.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as SqlSchema from "@effect/sql/SqlSchema"
import type { Backend } from "@keel/sql"
import * as Failure from "@keel/sql/Failure"
import * as Plan from "@keel/sql/Plan"
import * as Retry from "@keel/sql/Retry"
import type { ParseResult } from "effect"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { QueueStoreError } from "../QueueError.js"
import type * as QueueStore from "../QueueStore.js"
import * as Queues from "./sqlQueues.js"
import { type Statements, truthy } from "./sqlStatements.js"

const Archived = Schema.Struct({
  id: Schema.Number,
  payload: Schema.String,
  priority: Schema.Number,
  deliveries: Schema.Number,
  enqueued_at: Schema.Number,
  archived_at: Schema.Number,
  dead: Schema.Unknown,
  cancelled: Schema.Unknown,
  last_error: Schema.NullOr(Schema.String)
})

const Counts = Schema.Struct({
  name: Schema.String,
  depth: Schema.Number,
  in_flight: Schema.Number,
  delayed: Schema.Number,
  oldest: Schema.NullOr(Schema.Number),
  archived: Schema.Number,
  dead: Schema.Number
})

const WorkerRow = Schema.Struct({
  id: Schema.String,
  queue: Schema.NullOr(Schema.String),
  host: Schema.String,
  pid: Schema.Number,
  started_at: Schema.Number,
  heartbeat_at: Schema.Number,
  timeout_ms: Schema.Number,
  in_flight: Schema.Number
})

const refail = (operation: string) => Failure.refail((cause) => new QueueStoreError({ operation, cause }))

/** The admin operations of one database. */
export const make = (sql: SqlClient.SqlClient, backend: Backend.Backend, statements: Statements) => {
  const { isTrue, isFalse, forUpdate, limits, queueIdOf } = statements
  const pg = backend.dialect === "pg"
  /** The database's clock in epoch ms (the event log's clock). */
  const databaseNow = pg
    ? sql`CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)`
    : sql`CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)`
  const least = (column: string, value: number) =>
    pg ? sql`LEAST(${sql.literal(column)}, ${value})` : sql`MIN(${sql.literal(column)}, ${value})`

  /** A whole-transaction write, re-run only when it provably rolled back. */
  const write = <A>(operation: string, make: Plan.Make<A>) =>
    Retry.run(Retry.plan(make, backend)).pipe(refail(operation))

  /** A read, re-run after transient errors. A row the Schema rejects is a defect (a bug here). */
  const read = <A, R>(operation: string, effect: Effect.Effect<A, SqlError | ParseResult.ParseError, R>) =>
    Retry.run(Retry.read(Effect.catchTag(effect, "ParseError", Effect.die))).pipe(refail(operation))

  const queueId = (name: string) =>
    Effect.map(queueIdOf(name), (rows) => (rows[0] === undefined ? undefined : Number(rows[0].id)))

  const { ensureEventTriggers, ...queues } = Queues.make(sql, backend, { write, read })

  const count = (rows: ReadonlyArray<{ readonly n: unknown }>): number => Number(rows[0]?.n ?? 0)

  const deleteQueue: QueueStore.Store["deleteQueue"] = (name, options) =>
    write("deleteQueue", function* (): Plan.Plan<QueueStore.Deleted | undefined> {
      const [queue] = yield* Plan.rows(
        sql<{ id: number }>`SELECT id FROM keel_queue_queues WHERE name = ${name} ${forUpdate}`
      )
      if (queue === undefined) return undefined
      if (!options.force) {
        const inFlight = count(
          yield* Plan.rows(sql<{ n: number }>`SELECT COUNT(*) AS n FROM keel_queue_messages
            WHERE queue_id = ${queue.id} AND lease_token IS NOT NULL AND available_at > ${options.now}`)
        )
        if (inFlight > 0) return { _tag: "InFlight", inFlight }
      }
      const messages = count(
        yield* Plan.rows(
          sql<{ n: number }>`SELECT COUNT(*) AS n FROM keel_queue_messages WHERE queue_id = ${queue.id}`
        )
      )
      const archived = count(
        yield* Plan.rows(
          sql<{ n: number }>`SELECT COUNT(*) AS n FROM keel_queue_archive WHERE queue_id = ${queue.id}`
        )
      )
      yield* Plan.run(sql`DELETE FROM keel_queue_queues WHERE id = ${queue.id}`)
      return { _tag: "Deleted", messages, archived }
    })

  /** Deletes rows and counts them (exactly, even with concurrent sends on pg). */
  function* purge(table: "keel_queue_messages" | "keel_queue_archive", id: number) {
    const from = sql.literal(table)
    if (pg) {
      return count(
        yield* Plan.rows(sql<{ n: number }>`WITH d AS (DELETE FROM ${from} WHERE queue_id = ${id} RETURNING 1)
          SELECT COUNT(*) AS n FROM d`)
      )
    }
    yield* Plan.run(sql`DELETE FROM ${from} WHERE queue_id = ${id}`)
    return count(yield* Plan.rows(sql<{ n: number }>`SELECT changes() AS n`))
  }

  const purgeQueue: QueueStore.Store["purgeQueue"] = (name, options) =>
    write("purgeQueue", function* () {
      const [queue] = yield* Plan.rows(queueIdOf(name))
      if (queue === undefined) return undefined
      const messages = yield* purge("keel_queue_messages", Number(queue.id))
      const archived = options.archive ? yield* purge("keel_queue_archive", Number(queue.id)) : 0
      return { messages, archived }
    })

  // ---- archive and dead letters ---------------------------------------------------------------

  const listArchive: QueueStore.Store["listArchive"] = (name, query) =>
    read(
      "listArchive",
      Effect.gen(function* () {
        const id = yield* queueId(name)
        if (id === undefined) return undefined
        const conditions = [sql`queue_id = ${id}`]
        if (query.dead !== undefined) conditions.push(sql`dead = ${query.dead ? isTrue : isFalse}`)
        if (query.before !== undefined) conditions.push(sql`id < ${query.before}`)
        const rows = yield* SqlSchema.findAll({
          Request: Schema.Void,
          Result: Archived,
          execute:
            () => sql`SELECT id, payload, priority, deliveries, enqueued_at, archived_at, dead, cancelled, last_error
            FROM keel_queue_archive WHERE ${sql.and(conditions)} ORDER BY id DESC LIMIT ${query.limit}`
        })(undefined)
        return rows.map(
          (row): QueueStore.ArchiveRow => ({
            id: row.id,
            payload: row.payload,
            priority: row.priority,
            deliveries: row.deliveries,
            enqueuedAt: row.enqueued_at,
            archivedAt: row.archived_at,
            dead: truthy(row.dead),
            cancelled: truthy(row.cancelled),
            lastError: row.last_error
          })
        )
      })
    )

  /** Moves dead letters back into the queue (same ids, deliveries reset); the queue and the ids moved. */
  const requeueDead = (
    name: string,
    selection: { readonly ids: ReadonlyArray<number> | undefined; readonly limit: number },
    now: number
  ) =>
    write("requeueDead", function* () {
      const [queue] = yield* Plan.rows(queueIdOf(name))
      if (queue === undefined) return undefined
      const id = Number(queue.id)
      const chosen = (
        selection.ids === undefined
          ? yield* Plan.rows(sql<{
              id: number
            }>`SELECT id FROM keel_queue_archive WHERE queue_id = ${id} AND dead = ${isTrue}
              ORDER BY id LIMIT ${selection.limit} ${forUpdate}`)
          : yield* Plan.chunked(
              selection.ids,
              limits(1),
              (chunk) => sql<{ id: number }>`SELECT id FROM keel_queue_archive
                WHERE queue_id = ${id} AND dead = ${isTrue} AND ${sql.in("id", chunk)} ${forUpdate}`
            )
      ).map((row) => Number(row.id))
      yield* Plan.chunked(
        chosen,
        limits(1),
        (chunk) => sql`INSERT INTO keel_queue_messages
          (id, queue_id, payload, priority, enqueued_at, available_at, deliveries, last_error, max_deliveries, backoff,
           group_key)
        SELECT id, queue_id, payload, priority, enqueued_at, ${now}, 0, last_error, max_deliveries, backoff, group_key
        FROM keel_queue_archive WHERE ${sql.in("id", chunk)}`
      )
      yield* Plan.chunked(
        chosen,
        limits(1),
        (chunk) => sql`DELETE FROM keel_queue_archive WHERE ${sql.in("id", chunk)}`
      )
      if (pg && chosen.length > 0) yield* Plan.run(sql`SELECT pg_notify(${`keel_queue_${id}`}, 'requeue')`)
      return { queueId: id, ids: [...chosen].sort((a, b) => a - b) }
    })

  /** Deletes dead letters (these ids, or the oldest `limit`) for good; the ids deleted. */
  const deleteDead: QueueStore.Store["deleteDead"] = (name, selection) =>
    write("deleteDead", function* () {
      const [queue] = yield* Plan.rows(queueIdOf(name))
      if (queue === undefined) return undefined
      const id = Number(queue.id)
      const deleted =
        selection.ids === undefined
          ? yield* Plan.rows(sql<{ id: number }>`DELETE FROM keel_queue_archive WHERE id IN (
              SELECT id FROM keel_queue_archive WHERE queue_id = ${id} AND dead = ${isTrue}
              ORDER BY id LIMIT ${selection.limit}) RETURNING id`)
          : yield* Plan.chunked(
              selection.ids,
              limits(1),
              (chunk) => sql<{ id: number }>`DELETE FROM keel_queue_archive
                WHERE queue_id = ${id} AND dead = ${isTrue} AND ${sql.in("id", chunk)} RETURNING id`
            )
      return deleted.map((row) => Number(row.id)).sort((a, b) => a - b)
    })

  // ---- metrics ------------------------------------------------------------------------------

  const metrics: QueueStore.Store["metrics"] = (names, now) =>
    read(
      "metrics",
      SqlSchema.findAll({
        Request: Schema.Void,
        Result: Counts,
        execute: () => sql`SELECT q.name AS name,
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
          ORDER BY q.name`
      })(undefined).pipe(
        Effect.map((rows) =>
          rows.map(
            (row): QueueStore.MetricsRow => ({
              name: row.name,
              depth: row.depth,
              inFlight: row.in_flight,
              delayed: row.delayed,
              oldest: row.oldest,
              archived: row.archived,
              dead: row.dead
            })
          )
        )
      )
    )

  // ---- workers and maintenance --------------------------------------------------------------

  /** Releases every lease the workers hold: the messages are visible now (or when they already were). */
  function* releaseLeasesOf(workerIds: ReadonlyArray<string>, now: number) {
    const released = yield* Plan.chunked(
      workerIds,
      limits(1),
      (chunk) => sql<{ id: number }>`UPDATE keel_queue_messages
        SET lease_token = NULL, leased_by = NULL, leased_at = NULL, available_at = ${least("available_at", now)}
        WHERE ${sql.in("leased_by", chunk)} AND lease_token IS NOT NULL
        RETURNING id`
    )
    return released.length
  }

  function* forget(workerIds: ReadonlyArray<string>) {
    yield* Plan.chunked(
      workerIds,
      limits(1),
      (chunk) => sql`DELETE FROM keel_queue_workers WHERE ${sql.in("id", chunk)}`
    )
  }

  function* insertWorker(worker: QueueStore.WorkerEntry, queue: number | null) {
    const rows = yield* Plan.rows(
      sql`INSERT INTO keel_queue_workers ${sql.insert({
        id: worker.id,
        queue_id: queue,
        host: worker.host,
        pid: worker.pid,
        started_at: worker.now,
        heartbeat_at: worker.now,
        timeout_ms: worker.timeoutMs
      })} ON CONFLICT (id) DO NOTHING RETURNING 1 AS id`
    )
    return rows.length > 0
  }

  /** The worker's queue id: null for none, undefined when the named queue does not exist. */
  function* workerQueue(worker: QueueStore.WorkerEntry) {
    if (worker.queue === null) return null
    const [queue] = yield* Plan.rows(queueIdOf(worker.queue))
    return queue === undefined ? undefined : Number(queue.id)
  }

  const registerWorker: QueueStore.Store["registerWorker"] = (worker) =>
    write("registerWorker", function* (): Plan.Plan<QueueStore.Registered> {
      const queue = yield* workerQueue(worker)
      if (queue === undefined) return "queueMissing"
      if (yield* insertWorker(worker, queue)) return "registered"
      const [expiry] = yield* Plan.rows(
        sql<{
          n: number
        }>`SELECT heartbeat_at + timeout_ms AS n FROM keel_queue_workers WHERE id = ${worker.id} ${forUpdate}`
      )
      if (expiry !== undefined && Number(expiry.n) >= worker.now) return "inUse"
      // The previous holder of this id is stale (crashed): its leases are not ours.
      yield* releaseLeasesOf([worker.id], worker.now)
      yield* Plan.run(sql`UPDATE keel_queue_workers
        SET queue_id = ${queue}, host = ${worker.host}, pid = ${worker.pid},
            started_at = ${worker.now}, heartbeat_at = ${worker.now}, timeout_ms = ${worker.timeoutMs}
        WHERE id = ${worker.id}`)
      return "registered"
    })

  const heartbeat: QueueStore.Store["heartbeat"] = (worker) =>
    write("heartbeat", function* () {
      const beat = yield* Plan.rows(
        sql`UPDATE keel_queue_workers SET heartbeat_at = ${worker.now} WHERE id = ${worker.id} RETURNING 1 AS id`
      )
      if (beat.length > 0) return false
      // Declared stale by another process's maintenance: our leases were released. Rejoin.
      const queue = yield* workerQueue(worker)
      yield* insertWorker(worker, queue ?? null)
      return true
    })

  const deregisterWorker: QueueStore.Store["deregisterWorker"] = (id, now) =>
    write("deregisterWorker", function* () {
      yield* releaseLeasesOf([id], now)
      yield* forget([id])
    })

  const listWorkers: QueueStore.Store["listWorkers"] = (queue, now) =>
    read(
      "listWorkers",
      SqlSchema.findAll({
        Request: Schema.Void,
        Result: WorkerRow,
        execute:
          () => sql`SELECT w.id, q.name AS queue, w.host, w.pid, w.started_at, w.heartbeat_at, w.timeout_ms,
            (SELECT COUNT(*) FROM keel_queue_messages m
              WHERE m.leased_by = w.id AND m.lease_token IS NOT NULL AND m.available_at > ${now}) AS in_flight
          FROM keel_queue_workers w LEFT JOIN keel_queue_queues q ON q.id = w.queue_id
          ${queue === undefined ? sql`` : sql`WHERE q.name = ${queue}`}
          ORDER BY w.started_at, w.id`
      })(undefined).pipe(
        Effect.map((rows) =>
          rows.map(
            (row): QueueStore.WorkerRow => ({
              id: row.id,
              queue: row.queue,
              host: row.host,
              pid: row.pid,
              startedAt: row.started_at,
              heartbeatAt: row.heartbeat_at,
              timeoutMs: row.timeout_ms,
              inFlight: Number(row.in_flight)
            })
          )
        )
      )
    )

  const maintain: QueueStore.Store["maintain"] = (now, limit) =>
    write("maintain", function* () {
      const stale = (yield* Plan.rows(
        sql<{
          id: string
        }>`SELECT id FROM keel_queue_workers WHERE heartbeat_at + timeout_ms < ${now} ${forUpdate}`
      )).map((row) => String(row.id))
      const releasedLeases = stale.length === 0 ? 0 : yield* releaseLeasesOf(stale, now)
      if (stale.length > 0) yield* forget(stale)
      const purgedArchived = (yield* Plan.rows(sql`DELETE FROM keel_queue_archive WHERE id IN (
            SELECT a.id FROM keel_queue_archive a JOIN keel_queue_queues q ON q.id = a.queue_id
            WHERE a.dead = ${isFalse} AND a.archived_at < ${now} - q.retention_ms
            LIMIT ${limit}
          )
          RETURNING id`)).length
      const purgedKeys = (yield* Plan.rows(sql`DELETE FROM keel_queue_dedup_keys
          WHERE (queue_id, dedup_key) IN (
            SELECT k.queue_id, k.dedup_key FROM keel_queue_dedup_keys k
            JOIN keel_queue_queues q ON q.id = k.queue_id
            WHERE k.expires_at IS NULL AND k.created_at < ${now} - q.retention_ms
              AND NOT EXISTS (SELECT 1 FROM keel_queue_messages m WHERE m.id = k.message_id)
              AND NOT EXISTS (SELECT 1 FROM keel_queue_archive a WHERE a.id = k.message_id)
            LIMIT ${limit}
          )
          OR (queue_id, dedup_key) IN (
            SELECT queue_id, dedup_key FROM keel_queue_dedup_keys
            WHERE expires_at IS NOT NULL AND expires_at <= ${now}
            LIMIT ${limit}
          )
          RETURNING queue_id`)).length
      // Event times are the database's clock (see migration 8).
      const purgedEvents = (yield* Plan.rows(sql`DELETE FROM keel_queue_events WHERE id IN (
          SELECT e.id FROM keel_queue_events e LEFT JOIN keel_queue_queues q ON q.id = e.queue_id
          WHERE q.id IS NULL OR e.at < ${databaseNow} - q.retention_ms
          LIMIT ${limit}
        )
        RETURNING id`)).length
      return { staleWorkers: stale, releasedLeases, purgedArchived, purgedKeys, purgedEvents }
    })

  return {
    ensureEventTriggers,
    queueId,
    requeueDead,
    operations: {
      ...queues,
      deleteDead,
      deleteQueue,
      purgeQueue,
      listArchive,
      metrics,
      registerWorker,
      heartbeat,
      deregisterWorker,
      listWorkers,
      maintain
    }
  }
}
