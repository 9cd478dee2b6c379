/**
 * One message by id: `cancel` (archived as cancelled; a leased one's lease is revoked, so its
 * consumer interrupts the handler and acknowledges nothing), `update` (a queued message's
 * availability and priority), `getMessage` (as it is now), and `progress` (reported by its holder).
 */
import * as Clock from "effect/Clock"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { Id, ListMessagesOptions, UpdateOptions } from "../Options.js"
import {
  InvalidOption,
  type InvalidQueueName,
  LeaseLost,
  MessageLeased,
  MessageNotFound,
  QueueNotFound,
  type QueueStoreError
} from "../QueueError.js"
import type * as QueueStore from "../QueueStore.js"
import {
  type CancelOutcome,
  encodePayload,
  type Lease as HeldLease,
  MessageId,
  MessageInfo,
  maxProgressBytes,
  parseQueueName,
  type QueueName
} from "../Schemas.js"
import { decoder, valueDecoder } from "./optionSchema.js"

const validId = valueDecoder(Id)
const decodeUpdateOptions = decoder(UpdateOptions)
const decodeListOptions = decoder(ListMessagesOptions)

/** A stored message as `MessageInfo`; its state as of `now`. */
const toInfo = (queue: QueueName, row: QueueStore.MessageRow, now: number): MessageInfo =>
  new MessageInfo(
    {
      id: MessageId.make(row.id, true),
      queue,
      payload: JSON.parse(row.payload),
      priority: row.priority,
      state: row.leased ? "leased" : row.availableAt > now ? "delayed" : "queued",
      deliveries: row.deliveries,
      maxDeliveries: row.maxDeliveries,
      enqueuedAt: DateTime.unsafeMake(row.enqueuedAt),
      availableAt: DateTime.unsafeMake(row.availableAt),
      lastError: row.lastError,
      progress: row.progress === null ? null : JSON.parse(row.progress),
      backoff: row.backoff,
      group: row.group
    },
    true
  )

/** Operations on one message over `store`. */
export const make = (store: QueueStore.Store) => {
  /** Cancels message `id`: archived as cancelled whether queued or leased; `MessageNotFound` when it is not in the queue. */
  const cancel = (
    queue: string,
    id: number
  ): Effect.Effect<
    CancelOutcome,
    InvalidQueueName | InvalidOption | QueueNotFound | MessageNotFound | QueueStoreError
  > =>
    Effect.gen(function* () {
      const valid = yield* parseQueueName(queue)
      const checked = yield* validId("id", id)
      const outcome = yield* store.cancel(valid, checked, yield* Clock.currentTimeMillis)
      if (outcome === undefined) return yield* new QueueNotFound({ queue: valid })
      if (outcome === "missing") return yield* new MessageNotFound({ queue: valid, id: checked })
      return outcome === "cancelled" ? "cancelled" : "cancelledRunning"
    })

  /** Changes a queued message's availability (`delay` from now) and priority; `MessageLeased` while it is leased. */
  const update = (
    queue: string,
    id: number,
    options: UpdateOptions
  ): Effect.Effect<
    void,
    InvalidQueueName | InvalidOption | QueueNotFound | MessageNotFound | MessageLeased | QueueStoreError
  > =>
    Effect.gen(function* () {
      const valid = yield* parseQueueName(queue)
      const checked = yield* validId("id", id)
      const { delay: delayMs, priority } = yield* decodeUpdateOptions(options)
      const now = yield* Clock.currentTimeMillis
      const outcome = yield* store.update(
        valid,
        checked,
        { priority, availableAt: delayMs === undefined ? undefined : now + delayMs },
        now
      )
      if (outcome === undefined) return yield* new QueueNotFound({ queue: valid })
      if (outcome === "missing") return yield* new MessageNotFound({ queue: valid, id: checked })
      if (outcome === "leased") return yield* new MessageLeased({ queue: valid, id: checked })
    })

  /** Message `id` as it is now; `MessageNotFound` when it is not in the queue. */
  const getMessage = (
    queue: string,
    id: number
  ): Effect.Effect<
    MessageInfo,
    InvalidQueueName | InvalidOption | QueueNotFound | MessageNotFound | QueueStoreError
  > =>
    Effect.gen(function* () {
      const valid = yield* parseQueueName(queue)
      const checked = yield* validId("id", id)
      const now = yield* Clock.currentTimeMillis
      const row = yield* store.getMessage(valid, checked, now)
      if (row === undefined) return yield* new QueueNotFound({ queue: valid })
      if (row === "missing") return yield* new MessageNotFound({ queue: valid, id: checked })
      return toInfo(valid, row, now)
    })

  /** A page of the queue's messages in one state, oldest id first. */
  const listMessages = (
    queue: string,
    options: ListMessagesOptions = {}
  ): Effect.Effect<
    ReadonlyArray<MessageInfo>,
    InvalidQueueName | InvalidOption | QueueNotFound | QueueStoreError
  > =>
    Effect.gen(function* () {
      const valid = yield* parseQueueName(queue)
      const { state = "queued", after = 0, limit = 100 } = yield* decodeListOptions(options)
      const now = yield* Clock.currentTimeMillis
      const rows = yield* store.listMessages(valid, { state, after, limit, now })
      if (rows === undefined) return yield* new QueueNotFound({ queue: valid })
      return rows.map((row) => toInfo(valid, row, now))
    })

  /**
   * Records the progress of a message the caller leases: any JSON value of at most 4 KiB, shown by
   * `getMessage` (the last one reported wins). `LeaseLost` when the lease is no longer held.
   */
  const progress = (
    queue: string,
    lease: HeldLease,
    value: unknown
  ): Effect.Effect<void, InvalidQueueName | InvalidOption | QueueNotFound | LeaseLost | QueueStoreError> =>
    Effect.gen(function* () {
      const valid = yield* parseQueueName(queue)
      const checked = yield* validId("id", lease.id)
      const text = yield* Either.mapLeft(
        encodePayload(value, maxProgressBytes),
        (error) =>
          new InvalidOption({
            option: "progress",
            value: error._tag === "PayloadTooLarge" ? `${error.size} bytes of JSON` : error.reason,
            expected: `a JSON value of at most ${maxProgressBytes} bytes`
          })
      )
      const outcome = yield* store.setProgress(valid, { id: checked, lease: lease.lease }, text)
      if (outcome === undefined) return yield* new QueueNotFound({ queue: valid })
      if (outcome === "lost") return yield* new LeaseLost({ queue: valid, messageIds: [checked] })
    })

  return { cancel, update, getMessage, listMessages, progress }
}
