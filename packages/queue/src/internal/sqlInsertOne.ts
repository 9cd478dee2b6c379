/**
 * One message in one statement: the single unkeyed send of every dialect. The statement resolves
 * the queue by name (no such queue: no row) and, on PostgreSQL with notifications, notifies the
 * queue's channel. It is a `Plan.each` template with every value an argument, so on better-sqlite3
 * it compiles once per store instead of once per send.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Plan from "@keel/sql/Plan"
import * as Effect from "effect/Effect"
import * as Backoff from "../Backoff.js"
import type * as QueueStore from "../QueueStore.js"

/** The row an insert of messages returns. */
export interface IdRow {
  readonly id: number
  readonly queue_id: number
}

/** What a message may carry beyond its payload and priority, as its columns: retry policy, group (null: none). */
export const ownColumns = (message: QueueStore.NewMessage) => ({
  max_deliveries: message.maxDeliveries ?? null,
  backoff: message.backoff === undefined ? null : Backoff.encode(message.backoff),
  group_key: message.group ?? null
})

/** What a send of one message answers: its queue and id, or undefined when the queue does not exist. */
export const toSent = (rows: ReadonlyArray<IdRow>): QueueStore.Sent | undefined => {
  const row = rows[0]
  return row === undefined ? undefined : { queueId: Number(row.queue_id), ids: [Number(row.id)] }
}

/** The single send's statement, as a plan and as an autocommit effect. */
export const make = (sql: SqlClient.SqlClient, options: { readonly notifyInSql: boolean }) => {
  /** The statement for a message without (`traced` false) or with a trace context. */
  const template =
    (traced: boolean) =>
    (
      name: string,
      payload: string,
      priority: number,
      enqueuedAt: number,
      availableAt: number,
      maxDeliveries: number | null,
      backoff: string | null,
      groupKey: string | null,
      trace?: string
    ) => {
      const insert = sql<IdRow>`INSERT INTO keel_queue_messages
          (queue_id, payload, priority, enqueued_at, available_at, max_deliveries, backoff, group_key${
            traced ? sql`, trace` : sql``
          })
        SELECT id, CAST(${payload} AS TEXT), CAST(${priority} AS INTEGER),
               CAST(${enqueuedAt} AS BIGINT), CAST(${availableAt} AS BIGINT),
               CAST(${maxDeliveries} AS INTEGER), CAST(${backoff} AS TEXT),
               CAST(${groupKey} AS TEXT)${traced ? sql`, CAST(${trace} AS TEXT)` : sql``}
        FROM keel_queue_queues WHERE name = ${name}
        RETURNING id, queue_id`
      return options.notifyInSql
        ? sql<IdRow>`WITH m AS (${insert}) SELECT id, queue_id, pg_notify('keel_queue_' || queue_id, ${name}) FROM m`
        : insert
    }
  const untraced = template(false)
  const traced = template(true)

  /** The template `message` fills, and its values. */
  const templateOf = (name: string, message: QueueStore.NewMessage, now: number) => {
    const policy = ownColumns(message)
    const untracedValues = [
      name,
      message.payload,
      message.priority,
      now,
      now + message.delayMs,
      policy.max_deliveries,
      policy.backoff,
      policy.group_key
    ] as const
    const values: Readonly<Parameters<typeof untraced>> =
      message.trace === undefined ? untracedValues : [...untracedValues, message.trace]
    return { statement: message.trace === undefined ? untraced : traced, values }
  }

  return {
    /** `message` into the queue named `name`, inside the caller's plan. */
    plan: function* (name: string, message: QueueStore.NewMessage, now: number) {
      const { statement, values } = templateOf(name, message, now)
      return toSent(yield* Plan.bound(statement, values))
    },
    /** `message` into the queue named `name`, as one autocommit statement. */
    autocommit: (name: string, message: QueueStore.NewMessage, now: number) => {
      const { statement, values } = templateOf(name, message, now)
      return Effect.map(statement(...values), toSent)
    }
  }
}
