/**
 * Reading: leases up to `qty` visible messages with one store operation (one transaction, or one
 * statement on PostgreSQL), each with a fresh lease token and the visibility timeout.
 */
import { randomUUID } from "node:crypto"
import * as Clock from "effect/Clock"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Metrics from "../Metrics.js"
import { ReadOptions } from "../Options.js"
import {
  type InvalidOption,
  type InvalidQueueName,
  QueueNotFound,
  type QueueStoreError
} from "../QueueError.js"
import type * as QueueStore from "../QueueStore.js"
import { Leased, LeaseToken, MessageId, parseQueueName } from "../Schemas.js"
import { decoder } from "./optionSchema.js"

const decodeReadOptions = decoder(ReadOptions)

/** What one read took: the messages, and when the queue's rate limit lets it take more (if spent). */
export interface Taken {
  readonly messages: ReadonlyArray<Leased>
  /** Epoch ms when the queue's rate window that this read spent ends (absent: not throttled). */
  readonly throttledUntil: number | undefined
}

/** Reading over `store`. */
export const make = (store: QueueStore.Store) => {
  /** `read`, and whether the queue's rate limit stopped it (for consumers, to wait for the next window). */
  const take = (
    queue: string,
    options: ReadOptions = {}
  ): Effect.Effect<Taken, InvalidQueueName | QueueNotFound | InvalidOption | QueueStoreError> =>
    Effect.gen(function* () {
      const valid = yield* parseQueueName(queue)
      const checked = yield* decodeReadOptions(options)
      const qty = checked.qty ?? 1
      const visibilityMs = checked.visibilityTimeout
      const workerId = checked.workerId ?? null
      const token = LeaseToken.make(randomUUID(), true)
      const now = yield* Clock.currentTimeMillis
      const taken = yield* store.lease(valid, { qty, visibilityMs, workerId, token, now })
      if (taken === undefined) return yield* new QueueNotFound({ queue: valid })
      yield* Metrics.count(Metrics.leased, valid, taken.leased.length)
      yield* Metrics.count(Metrics.deadLettered, valid, taken.dead)
      const leasedAt = DateTime.unsafeMake(now)
      const messages = taken.leased.map(
        (row) =>
          new Leased(
            {
              id: MessageId.make(row.id, true),
              queue: valid,
              payload: JSON.parse(row.payload),
              priority: row.priority,
              deliveries: row.deliveries,
              enqueuedAt: DateTime.unsafeMake(row.enqueuedAt),
              leasedAt,
              visibleAt: DateTime.unsafeMake(row.visibleAt),
              lease: token,
              workerId,
              lastError: row.lastError,
              maxDeliveries: row.maxDeliveries,
              backoff: row.backoff,
              group: row.group,
              trace: row.trace
            },
            true
          )
      )
      return { messages, throttledUntil: taken.throttledUntil }
    })

  /**
   * Leases up to `qty` visible messages, by priority, then visible-since, then id; exhausted ones
   * are dead-lettered instead. May return fewer than `qty` (none visible, or the queue's limits).
   */
  const read = (
    queue: string,
    options: ReadOptions = {}
  ): Effect.Effect<
    ReadonlyArray<Leased>,
    InvalidQueueName | QueueNotFound | InvalidOption | QueueStoreError
  > => Effect.map(take(queue, options), (taken) => taken.messages)

  return { read, take }
}
