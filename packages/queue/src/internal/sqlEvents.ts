/**
 * Reading the event log (written by the triggers of migration 8): events after an id, oldest
 * first, for one queue or all; the newest id; and the wake-ups PostgreSQL sends when events are
 * recorded (elsewhere readers poll). Reads are re-run after transient errors.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { Backend } from "@keel/sql"
import * as Failure from "@keel/sql/Failure"
import * as Retry from "@keel/sql/Retry"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { QueueStoreError } from "../QueueError.js"
import type * as QueueStore from "../QueueStore.js"
import { EventType } from "../Schemas.js"

interface EventRowSql {
  readonly id: number
  readonly name: string
  readonly message_id: number
  readonly type: string
  readonly at: number
  readonly error: string | null
}

/** The PostgreSQL channel the event triggers notify. */
export const channel = "keel_queue_events"

const eventTypes: ReadonlyArray<string> = EventType.literals

const isEventType = (type: string): type is EventType => eventTypes.includes(type)

const refail = (operation: string) => Failure.refail((cause) => new QueueStoreError({ operation, cause }))

/** The event-log operations of one database. */
export const make = (sql: SqlClient.SqlClient, backend: Backend.Backend) => {
  const toRow = (row: EventRowSql): QueueStore.EventRow => {
    const type = String(row.type)
    if (!isEventType(type)) throw new Error(`the event log holds an unknown type ${type}`)
    return {
      id: Number(row.id),
      queue: String(row.name),
      messageId: Number(row.message_id),
      type,
      at: Number(row.at),
      error: row.error === null ? null : String(row.error)
    }
  }

  const readEvents: QueueStore.Store["readEvents"] = (name, after, limit) =>
    Retry.run(
      Retry.read(
        Effect.gen(function* () {
          let filter = sql``
          if (name !== undefined) {
            const [queue] = yield* sql<{ id: number }>`SELECT id FROM keel_queue_queues WHERE name = ${name}`
            if (queue === undefined) return undefined
            filter = sql`AND e.queue_id = ${queue.id}`
          }
          const rows = yield* sql<EventRowSql>`SELECT e.id, q.name, e.message_id, e.type, e.at, e.error
            FROM keel_queue_events e JOIN keel_queue_queues q ON q.id = e.queue_id
            WHERE e.id > ${after} ${filter}
            ORDER BY e.id LIMIT ${limit}`
          return rows.map(toRow)
        })
      )
    ).pipe(refail("readEvents"))

  const lastEventId: QueueStore.Store["lastEventId"] = Retry.run(
    Retry.read(
      Effect.map(sql<{ id: number | null }>`SELECT MAX(id) AS id FROM keel_queue_events`, (rows) =>
        Number(rows[0]?.id ?? 0)
      )
    )
  ).pipe(refail("lastEventId"))

  const eventSignals: QueueStore.Store["eventSignals"] =
    backend.kind === "postgres"
      ? Stream.mapError(
          Stream.as(backend.notifications.listen(channel), undefined),
          (cause) => new QueueStoreError({ operation: "listen", cause })
        )
      : Stream.never

  return { readEvents, lastEventId, eventSignals }
}
