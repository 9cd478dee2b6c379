/**
 * The queue rows: create, find, list and change a queue's settings. Rows are decoded with a Schema;
 * writes and reads run as the admin module runs them (`write`: a whole transaction re-run only when
 * it provably rolled back; `read`: re-run after transient errors).
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as SqlSchema from "@effect/sql/SqlSchema"
import type { Backend } from "@keel/sql"
import * as Plan from "@keel/sql/Plan"
import type { ParseResult } from "effect"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { eventTriggers } from "../migrations/index.js"
import type { QueueStoreError } from "../QueueError.js"
import type * as QueueStore from "../QueueStore.js"
import { truthy } from "./sqlStatements.js"

const Row = Schema.Struct({
  id: Schema.Number,
  name: Schema.String,
  visibility_timeout_ms: Schema.Number,
  max_deliveries: Schema.Number,
  retention_ms: Schema.Number,
  concurrency_limit: Schema.NullOr(Schema.Number),
  rate_limit: Schema.NullOr(Schema.Number),
  rate_interval_ms: Schema.NullOr(Schema.Number),
  group_concurrency: Schema.Number,
  group_block_on_dead: Schema.Unknown,
  events: Schema.Unknown,
  created_at: Schema.Number,
  updated_at: Schema.Number
})

const toQueue = (row: typeof Row.Type): QueueStore.QueueRow => ({
  id: row.id,
  name: row.name,
  visibilityTimeoutMs: row.visibility_timeout_ms,
  maxDeliveries: row.max_deliveries,
  retentionMs: row.retention_ms,
  concurrencyLimit: row.concurrency_limit,
  rateLimit: row.rate_limit,
  rateIntervalMs: row.rate_interval_ms,
  groupConcurrency: row.group_concurrency,
  groupBlockOnDead: truthy(row.group_block_on_dead),
  events: truthy(row.events),
  createdAt: row.created_at,
  updatedAt: row.updated_at
})

/** How the admin module runs writes and reads. */
export interface Runners {
  readonly write: <A>(operation: string, make: Plan.Make<A>) => Effect.Effect<A, QueueStoreError>
  readonly read: <A, R>(
    operation: string,
    effect: Effect.Effect<A, SqlError | ParseResult.ParseError, R>
  ) => Effect.Effect<A, QueueStoreError, R>
}

/** The queue-row operations of one database. */
export const make = (sql: SqlClient.SqlClient, backend: Backend.Backend, { write, read }: Runners) => {
  // A boolean as a bind value: PostgreSQL's boolean, SQLite's 0/1.
  const trueValue = backend.dialect === "pg" ? true : 1
  const falseValue = backend.dialect === "pg" ? false : 0
  const triggers = eventTriggers[backend.dialect]

  /**
   * The event log's triggers, created (idempotently) before a queue turns `events` on, in the same
   * transaction: its first change is recorded. Created first, so that on PostgreSQL the table
   * locks come before the queue row's.
   */
  function* recordEvents(): Generator<Plan.Run, void, unknown> {
    for (const statement of triggers) yield* Plan.run(sql.unsafe(statement))
  }

  const findRow = SqlSchema.findAll({
    Request: Schema.String,
    Result: Row,
    execute: (name) => sql`SELECT * FROM keel_queue_queues WHERE name = ${name}`
  })

  const decodeQueue = Schema.decodeUnknownSync(Row)

  // ---- queues -------------------------------------------------------------------------------

  const createQueue: QueueStore.Store["createQueue"] = (name, settings, now) =>
    write("createQueue", function* () {
      if (settings.events) yield* recordEvents()
      const inserted = yield* Plan.rows(
        sql`INSERT INTO keel_queue_queues ${sql.insert({
          name,
          visibility_timeout_ms: settings.visibilityTimeoutMs,
          max_deliveries: settings.maxDeliveries,
          retention_ms: settings.retentionMs,
          concurrency_limit: settings.concurrencyLimit,
          rate_limit: settings.rateLimit,
          rate_interval_ms: settings.rateIntervalMs,
          group_concurrency: settings.groupConcurrency,
          group_block_on_dead: settings.groupBlockOnDead ? trueValue : falseValue,
          events: settings.events ? trueValue : falseValue,
          created_at: now,
          updated_at: now
        })} ON CONFLICT (name) DO NOTHING RETURNING *`
      )
      const created = inserted[0]
      if (created !== undefined) return { queue: toQueue(decodeQueue(created)), created: true }
      const [existing] = yield* Plan.rows(sql`SELECT * FROM keel_queue_queues WHERE name = ${name}`)
      if (existing === undefined) throw new Error(`queue ${name} neither inserted nor found`)
      return { queue: toQueue(decodeQueue(existing)), created: false }
    })

  const findQueue: QueueStore.Store["findQueue"] = (name) =>
    read(
      "findQueue",
      Effect.map(findRow(name), (rows) => (rows[0] === undefined ? undefined : toQueue(rows[0])))
    )

  const listQueues: QueueStore.Store["listQueues"] = read(
    "listQueues",
    Effect.map(
      SqlSchema.findAll({
        Request: Schema.Void,
        Result: Row,
        execute: () => sql`SELECT * FROM keel_queue_queues ORDER BY name`
      })(undefined),
      (rows) => rows.map(toQueue)
    )
  )

  const updateQueue: QueueStore.Store["updateQueue"] = (name, changes, now) => {
    const columns: Record<string, number | boolean | null> = { updated_at: now }
    if (changes.visibilityTimeoutMs !== undefined) columns.visibility_timeout_ms = changes.visibilityTimeoutMs
    if (changes.maxDeliveries !== undefined) columns.max_deliveries = changes.maxDeliveries
    if (changes.retentionMs !== undefined) columns.retention_ms = changes.retentionMs
    if (changes.concurrencyLimit !== undefined) columns.concurrency_limit = changes.concurrencyLimit
    if (changes.rateLimit !== undefined) {
      // A new (or removed) rate limit starts counting afresh.
      columns.rate_limit = changes.rateLimit
      columns.rate_interval_ms = changes.rateIntervalMs ?? null
      columns.rate_window_start = null
      columns.rate_window_count = 0
    }
    if (changes.groupConcurrency !== undefined) columns.group_concurrency = changes.groupConcurrency
    if (changes.groupBlockOnDead !== undefined)
      columns.group_block_on_dead = changes.groupBlockOnDead ? trueValue : falseValue
    if (changes.events !== undefined) columns.events = changes.events ? trueValue : falseValue
    return write("updateQueue", function* () {
      if (changes.events === true) yield* recordEvents()
      const [row] = yield* Plan.rows(
        sql`UPDATE keel_queue_queues SET ${sql.update(columns)} WHERE name = ${name} RETURNING *`
      )
      return row === undefined ? undefined : toQueue(decodeQueue(row))
    })
  }

  /** At start: the triggers, when a queue already records events (a read first; a write only then). */
  const ensureEventTriggers = Effect.flatMap(
    read(
      "ensureEventTriggers",
      sql<{
        any: unknown
      }>`SELECT EXISTS (SELECT 1 FROM keel_queue_queues WHERE events = ${trueValue}) AS any`
    ),
    (rows) => (truthy(rows[0]?.any) ? write("ensureEventTriggers", recordEvents) : Effect.void)
  )

  return { createQueue, findQueue, listQueues, updateQueue, ensureEventTriggers }
}
