/**
 * One message by id, outside any lease: `cancel` (archived as cancelled; a leased one's lease is
 * revoked, so its consumer interrupts the handler and acknowledges nothing) and `update` (a queued
 * message's availability and priority).
 */
import { Clock, Effect } from "effect"
import { type CancelOutcome, maxDelayMs, parseQueueName, priorityRange } from "../Message.js"
import type { UpdateOptions } from "../Options.js"
import {
  type InvalidOption,
  type InvalidQueueName,
  MessageLeased,
  MessageNotFound,
  QueueNotFound,
  type QueueStoreError
} from "../QueueError.js"
import type * as QueueStore from "../QueueStore.js"
import { integer, optionalDuration } from "./validate.js"

/** A message id: a positive integer. */
const messageId = (id: unknown) => integer("id", id, { min: 1, max: Number.MAX_SAFE_INTEGER })

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
      const checked = yield* messageId(id)
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
      const checked = yield* messageId(id)
      const delayMs =
        options.delay === undefined
          ? undefined
          : yield* optionalDuration("delay", options.delay, { min: 0, max: maxDelayMs }, 0)
      const priority =
        options.priority === undefined
          ? undefined
          : yield* integer("priority", options.priority, priorityRange)
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

  return { cancel, update }
}
