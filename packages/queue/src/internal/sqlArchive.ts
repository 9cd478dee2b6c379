/**
 * Moving messages out of the queue: to the archive (acknowledged, dead or cancelled; the archive
 * insert comes first, so that the event log's delete trigger sees the message archived) or simply
 * deleted. Statements chunked under the backend's parameter limit; run inside the caller's plan.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as Statement from "@effect/sql/Statement"
import * as Plan from "@keel/sql/Plan"

/** How an archived copy of a message is written. */
export interface Archiving {
  readonly dead: boolean
  readonly now: number
  /** Replaces the message's last error when given. */
  readonly error: string | null
  /** Recorded when the message has no last error. */
  readonly fallbackError: string | null
  /** Deliveries that never happened, subtracted. */
  readonly undo: number
  /** Archived as cancelled (default false). */
  readonly cancelled?: boolean | undefined
}

/** The archive statements of one database. */
export const make = (
  sql: SqlClient.SqlClient,
  options: {
    readonly isTrue: Statement.Fragment
    readonly isFalse: Statement.Fragment
    readonly limits: (parametersPerItem: number) => {
      readonly parameterLimit: number
      readonly parametersPerItem: number
      readonly fixedParameters: number
    }
  }
) => {
  const { isTrue, isFalse, limits } = options

  /** Moves messages to the archive (dead or not) and deletes them from the queue. */
  function* archive(messageIds: ReadonlyArray<number>, how: Archiving) {
    yield* Plan.chunked(
      messageIds,
      limits(1),
      (chunk) => sql`INSERT INTO keel_queue_archive
        (id, queue_id, payload, priority, enqueued_at, deliveries, dead, last_error, archived_at, max_deliveries, backoff,
         cancelled, group_key)
      SELECT id, queue_id, payload, priority, enqueued_at, deliveries - ${how.undo},
             ${how.dead ? isTrue : isFalse}, COALESCE(${how.error}, last_error, ${how.fallbackError}), ${how.now},
             max_deliveries, backoff, ${how.cancelled === true ? isTrue : isFalse}, group_key
      FROM keel_queue_messages WHERE ${sql.in("id", chunk)}`
    )
    yield* remove(messageIds)
  }

  /** Deletes messages from the queue. */
  function* remove(messageIds: ReadonlyArray<number>) {
    yield* Plan.chunked(
      messageIds,
      limits(1),
      (chunk) => sql`DELETE FROM keel_queue_messages WHERE ${sql.in("id", chunk)}`
    )
  }

  return { archive, remove }
}
