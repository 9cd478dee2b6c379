/**
 * Statements on one message by id: cancel (archived as cancelled, its lease revoked if it has
 * one), update (a queued message's priority and availability), read it as it is now, record a
 * handler's progress (lease-checked), and the read-only check of which leases a consumer still holds.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Plan from "@keel/sql/Plan"
import * as Backoff from "../Backoff.js"
import type * as QueueStore from "../QueueStore.js"
import { channel, type Statements, unique } from "./sqlStatements.js"

/** The payload of the notification that tells a queue's consumers a leased message was cancelled. */
export const cancelPayload = ":cancel"

interface StateRow {
  readonly id: number
  readonly queue_id: number
  readonly lease_token: string | null
  readonly available_at: number
}

interface MessageRow {
  readonly id: number
  readonly payload: string
  readonly priority: number
  readonly enqueued_at: number
  readonly available_at: number
  readonly deliveries: number
  readonly lease_token: string | null
  readonly last_error: string | null
  readonly progress: string | null
  readonly backoff: string | null
  readonly group_key: string | null
  readonly max_deliveries: number
}

/** A stored message as the store reports it; `leased` as of `now`. */
const toMessageRow = (row: MessageRow, now: number): QueueStore.MessageRow => ({
  id: Number(row.id),
  payload: row.payload,
  priority: Number(row.priority),
  enqueuedAt: Number(row.enqueued_at),
  availableAt: Number(row.available_at),
  deliveries: Number(row.deliveries),
  leased: row.lease_token !== null && Number(row.available_at) > now,
  lastError: row.last_error,
  progress: row.progress,
  maxDeliveries: Number(row.max_deliveries),
  backoff: Backoff.decode(row.backoff),
  group: row.group_key
})

/** The message statements of one database, over its shared statements. */
export const make = (
  sql: SqlClient.SqlClient,
  statements: Statements,
  options: { readonly notifyInSql: boolean }
) => {
  const { archive, forUpdateOfMessages, queueIdOf, limits } = statements
  /** The columns of a `MessageRow`, from messages `m` joined with their queue `q`. */
  const messageColumns = sql`m.id, m.payload, m.priority, m.enqueued_at, m.available_at, m.deliveries,
    m.lease_token, m.last_error, m.progress, m.backoff, m.group_key,
    COALESCE(m.max_deliveries, q.max_deliveries) AS max_deliveries`

  /** Message `id` of the named queue, locked on PostgreSQL; or whether the queue exists. */
  function* find(name: string, id: number) {
    const [row] = yield* Plan.rows(sql<StateRow>`SELECT m.id, m.queue_id, m.lease_token, m.available_at
      FROM keel_queue_messages m JOIN keel_queue_queues q ON q.id = m.queue_id
      WHERE q.name = ${name} AND m.id = ${id} ${forUpdateOfMessages}`)
    if (row !== undefined) return { _tag: "Found", row } as const
    const [queue] = yield* Plan.rows(queueIdOf(name))
    return queue === undefined ? ({ _tag: "NoQueue" } as const) : ({ _tag: "Missing" } as const)
  }

  const leased = (row: StateRow, now: number) => row.lease_token !== null && Number(row.available_at) > now

  /**
   * Archives message `id` as cancelled; a leased one's lease goes with it (its holder finds it
   * lost) and, on PostgreSQL, its queue's consumers are notified. The queue id is returned for the
   * caller's in-process signal.
   */
  const cancelPlan = (
    name: string,
    id: number,
    now: number
  ): Plan.Make<{ readonly outcome: QueueStore.Cancelled; readonly queueId: number } | undefined> =>
    function* () {
      const found = yield* find(name, id)
      if (found._tag === "NoQueue") return undefined
      if (found._tag === "Missing") return { outcome: "missing", queueId: 0 }
      const { row } = found
      const queueId = Number(row.queue_id)
      const wasLeased = leased(row, now)
      yield* archive([id], { dead: false, cancelled: true, now, error: null, fallbackError: null, undo: 0 })
      if (wasLeased && options.notifyInSql)
        yield* Plan.run(sql`SELECT pg_notify(${channel(queueId)}, ${cancelPayload})`)
      return { outcome: wasLeased ? "cancelledLeased" : "cancelled", queueId }
    }

  /** Changes message `id` if it is queued and not leased. */
  const updatePlan = (
    name: string,
    id: number,
    change: QueueStore.MessageChange,
    now: number
  ): Plan.Make<{ readonly outcome: QueueStore.Updated; readonly queueId: number } | undefined> =>
    function* () {
      const found = yield* find(name, id)
      if (found._tag === "NoQueue") return undefined
      if (found._tag === "Missing") return { outcome: "missing", queueId: 0 }
      const { row } = found
      if (leased(row, now)) return { outcome: "leased", queueId: Number(row.queue_id) }
      yield* Plan.run(sql`UPDATE keel_queue_messages
        SET priority = COALESCE(${change.priority ?? null}, priority),
            available_at = COALESCE(${change.availableAt ?? null}, available_at)
        WHERE id = ${id}`)
      return { outcome: "updated", queueId: Number(row.queue_id) }
    }

  /** Of `leases`, the ids whose token no longer matches (acknowledged, cancelled, or leased again). */
  const lostLeasesPlan = (
    name: string,
    leases: ReadonlyArray<QueueStore.HeldLease>
  ): Plan.Make<ReadonlyArray<number> | undefined> =>
    function* () {
      const [queue] = yield* Plan.rows(queueIdOf(name))
      if (queue === undefined) return undefined
      const rows = yield* Plan.chunked(
        unique(leases.map((lease) => lease.id)),
        limits(1),
        (chunk) => sql<{
          id: number
          lease_token: string | null
        }>`SELECT id, lease_token FROM keel_queue_messages
          WHERE queue_id = ${queue.id} AND ${sql.in("id", chunk)}`
      )
      const tokens = new Map(rows.map((row) => [Number(row.id), row.lease_token]))
      return unique(leases.filter((lease) => tokens.get(lease.id) !== lease.lease).map((lease) => lease.id))
    }

  /** Message `id` as it is now, with its effective max deliveries. */
  const getPlan = (
    name: string,
    id: number,
    now: number
  ): Plan.Make<QueueStore.MessageRow | "missing" | undefined> =>
    function* () {
      const [row] = yield* Plan.rows(sql<MessageRow>`SELECT ${messageColumns}
        FROM keel_queue_messages m JOIN keel_queue_queues q ON q.id = m.queue_id
        WHERE q.name = ${name} AND m.id = ${id}`)
      if (row === undefined) {
        const [queue] = yield* Plan.rows(queueIdOf(name))
        return queue === undefined ? undefined : "missing"
      }
      return toMessageRow(row, now)
    }

  /** A page of the queue's messages in `query.state`, by id ascending; undefined without the queue. */
  const listPlan = (
    name: string,
    query: QueueStore.MessageQuery
  ): Plan.Make<ReadonlyArray<QueueStore.MessageRow> | undefined> =>
    function* () {
      const [queue] = yield* Plan.rows(queueIdOf(name))
      if (queue === undefined) return undefined
      const { now } = query
      const inState =
        query.state === "queued"
          ? sql`m.available_at <= ${now}`
          : query.state === "delayed"
            ? sql`m.available_at > ${now} AND m.lease_token IS NULL`
            : sql`m.available_at > ${now} AND m.lease_token IS NOT NULL`
      const rows = yield* Plan.rows(sql<MessageRow>`SELECT ${messageColumns}
        FROM keel_queue_messages m JOIN keel_queue_queues q ON q.id = m.queue_id
        WHERE m.queue_id = ${Number(queue.id)} AND m.id > ${query.after} AND ${inState}
        ORDER BY m.id LIMIT ${query.limit}`)
      return rows.map((row) => toMessageRow(row, now))
    }

  /** Records progress on a message whose lease token is still `lease.lease`. */
  const progressPlan = (
    name: string,
    lease: QueueStore.HeldLease,
    progress: string
  ): Plan.Make<QueueStore.ProgressSet | undefined> =>
    function* () {
      const rows = yield* Plan.rows(sql<{ id: number }>`UPDATE keel_queue_messages SET progress = ${progress}
        WHERE id = ${lease.id} AND lease_token = ${lease.lease}
          AND queue_id = (SELECT id FROM keel_queue_queues WHERE name = ${name})
        RETURNING id`)
      if (rows.length > 0) return "set"
      const [queue] = yield* Plan.rows(queueIdOf(name))
      return queue === undefined ? undefined : "lost"
    }

  return { cancelPlan, updatePlan, lostLeasesPlan, getPlan, listPlan, progressPlan }
}
