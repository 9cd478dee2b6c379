/**
 * Sends: input checked synchronously (a send should not pay for an effect per check), then one
 * store operation. What is retried, grouped or run as one statement is the store's decision (see
 * `SqlQueueStore.ts`); here a send whose outcome the store could not confirm becomes
 * `SendOutcomeUnknown`, and a missing queue `QueueNotFound`.
 */
import { Batch, Telemetry } from "@keel/sql"
import { Clock, Effect, Either, Predicate } from "effect"
import * as Backoff from "../Backoff.js"
import {
  DedupMode,
  describeInput,
  encodePayload,
  MessageId,
  maxBatchSize,
  maxDedupWindowMs,
  maxDelayMs,
  maxMaxDeliveries,
  parseQueueName,
  priorityRange,
  type QueueName,
  validateDedupKey,
  validateGroup
} from "../Message.js"
import * as Metrics from "../Metrics.js"
import type { OutgoingMessage, SendOptions } from "../Options.js"
import {
  InvalidOption,
  InvalidPayload,
  type InvalidQueueName,
  type PayloadTooLarge,
  QueueNotFound,
  type QueueStoreError,
  SendOutcomeUnknown
} from "../QueueError.js"
import type * as QueueStore from "../QueueStore.js"
import { duration, integer, optionalDuration, optionalInteger } from "./validate.js"

/** Errors of sends. */
export type SendError =
  | InvalidQueueName
  | QueueNotFound
  | InvalidPayload
  | PayloadTooLarge
  | InvalidOption
  | SendOutcomeUnknown
  | QueueStoreError

/** The prefix of option names inside `field` (`messages[3].`), none for a single send. */
const prefixOf = (field: string): string => (field === "" ? "" : `${field}.`)

const dedupModes: ReadonlyArray<unknown> = DedupMode.literals

/** `dedupWindow` (1 ms to 3650 days) and `dedupMode`: each only with a `dedupKey`. */
const dedupOptions = (
  message: OutgoingMessage,
  prefix: string,
  keyed: boolean
): Either.Either<{ readonly windowMs: number | undefined; readonly mode: DedupMode }, InvalidOption> => {
  const { dedupMode: mode, dedupWindow: window } = message
  if (mode !== undefined && !dedupModes.includes(mode)) {
    return Either.left(
      new InvalidOption({
        option: `${prefix}dedupMode`,
        value: describeInput(mode),
        expected: "one of ignore, replace, debounce"
      })
    )
  }
  if (!keyed && (mode !== undefined || window !== undefined)) {
    const option = window !== undefined ? "dedupWindow" : "dedupMode"
    return Either.left(
      new InvalidOption({
        option: `${prefix}${option}`,
        value: describeInput(window ?? mode),
        expected: `no ${option} without a dedupKey`
      })
    )
  }
  if (window === undefined) return Either.right({ windowMs: undefined, mode: mode ?? "ignore" })
  return Either.map(
    duration(`${prefix}dedupWindow`, window, { min: 1, max: maxDedupWindowMs }),
    (windowMs) => ({
      windowMs,
      mode: mode ?? "ignore"
    })
  )
}

/**
 * Sending over `store`: payloads up to `maxPayloadBytes`. With `tracing`, each message carries the
 * trace context it was sent in (without it, a send does no trace work at all).
 */
export const make = (store: QueueStore.Store, maxPayloadBytes: number, tracing = false) => {
  /**
   * Checks one message; the first failure in field order is the one reported. Plain code, no
   * combinators: it runs on every send.
   */
  const prepare = (
    message: OutgoingMessage,
    field: string
  ): Either.Either<QueueStore.NewMessage, InvalidPayload | PayloadTooLarge | InvalidOption> => {
    const payload = encodePayload(message.payload, maxPayloadBytes)
    if (Either.isLeft(payload)) {
      const error = payload.left
      return Either.left(
        error._tag === "InvalidPayload" && field !== ""
          ? new InvalidPayload({ reason: `${field}: ${error.reason}` })
          : error
      )
    }
    const delayMs =
      message.delay === undefined
        ? Either.right(0)
        : optionalDuration(`${prefixOf(field)}delay`, message.delay, { min: 0, max: maxDelayMs }, 0)
    if (Either.isLeft(delayMs)) return Either.left(delayMs.left)
    const priority =
      message.priority === undefined
        ? Either.right(0)
        : optionalInteger(`${prefixOf(field)}priority`, message.priority, priorityRange, 0)
    if (Either.isLeft(priority)) return Either.left(priority.left)
    const dedupKey =
      message.dedupKey === undefined
        ? Either.right(undefined)
        : validateDedupKey(message.dedupKey, `${prefixOf(field)}dedupKey`)
    if (Either.isLeft(dedupKey)) return Either.left(dedupKey.left)
    const uniqueness = dedupOptions(message, prefixOf(field), dedupKey.right !== undefined)
    if (Either.isLeft(uniqueness)) return Either.left(uniqueness.left)
    const maxDeliveries =
      message.maxDeliveries === undefined
        ? Either.right(undefined)
        : integer(`${prefixOf(field)}maxDeliveries`, message.maxDeliveries, { min: 1, max: maxMaxDeliveries })
    if (Either.isLeft(maxDeliveries)) return Either.left(maxDeliveries.left)
    const backoff =
      message.backoff === undefined
        ? Either.right(undefined)
        : Backoff.resolve(`${prefixOf(field)}backoff`, message.backoff)
    if (Either.isLeft(backoff)) return Either.left(backoff.left)
    const group =
      message.group === undefined
        ? Either.right(undefined)
        : validateGroup(message.group, `${prefixOf(field)}group`)
    if (Either.isLeft(group)) return Either.left(group.left)
    return Either.right({
      payload: payload.right,
      delayMs: delayMs.right,
      priority: priority.right,
      dedupKey: dedupKey.right,
      dedupWindowMs: uniqueness.right.windowMs,
      dedupMode: uniqueness.right.mode,
      maxDeliveries: maxDeliveries.right,
      backoff: backoff.right,
      group: group.right
    })
  }

  /** Stores checked messages: their ids, `QueueNotFound`, or `SendOutcomeUnknown` when the store cannot tell. */
  const storedAsIs = (queue: QueueName, messages: ReadonlyArray<QueueStore.NewMessage>) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.matchEffect(store.send(queue, messages, now), {
        onFailure: (error): Effect.Effect<never, QueueStoreError | SendOutcomeUnknown> =>
          Predicate.isTagged(error.cause, "CommitOutcomeUnknown")
            ? Effect.fail(
                new SendOutcomeUnknown({ queue, messages: messages.length, reason: error.cause.message })
              )
            : Effect.fail(error),
        onSuccess: (sent) =>
          sent === undefined
            ? Effect.fail(new QueueNotFound({ queue }))
            : Effect.as(Metrics.count(Metrics.sent, queue, messages.length), sent.ids)
      })
    )

  /** `storedAsIs`, each message with the current trace context when tracing. */
  const stored = tracing
    ? (queue: QueueName, messages: ReadonlyArray<QueueStore.NewMessage>) =>
        Effect.flatMap(Telemetry.traceparent, (trace) =>
          storedAsIs(
            queue,
            trace === undefined ? messages : messages.map((message) => ({ ...message, trace }))
          )
        )
    : storedAsIs

  /** Sends one message; its id. */
  const send = (
    queue: string,
    payload: unknown,
    options: SendOptions = {}
  ): Effect.Effect<MessageId, SendError> =>
    Effect.suspend((): Effect.Effect<MessageId, SendError> => {
      const valid = parseQueueName(queue)
      if (Either.isLeft(valid)) return Effect.fail(valid.left)
      const message = prepare({ ...options, payload }, "")
      if (Either.isLeft(message)) return Effect.fail(message.left)
      return Effect.flatMap(stored(valid.right, [message.right]), (ids): Effect.Effect<MessageId> => {
        const id = ids[0]
        return id === undefined
          ? Effect.dieMessage("a send returned no id")
          : Effect.succeed(MessageId.make(id, true))
      })
    })

  /** Sends up to 10,000 messages atomically; their ids in input order. */
  const sendBatch = (
    queue: string,
    messages: ReadonlyArray<OutgoingMessage>
  ): Effect.Effect<ReadonlyArray<MessageId>, SendError | Batch.BatchTooLarge> =>
    Effect.gen(function* () {
      const valid = yield* parseQueueName(queue)
      yield* Batch.validate(messages, maxBatchSize)
      const prepared = yield* Effect.forEach(messages, (message, index) =>
        prepare(message, `messages[${index}]`)
      )
      if (prepared.length === 0) {
        if ((yield* store.findQueue(valid)) === undefined) return yield* new QueueNotFound({ queue: valid })
        return []
      }
      const ids = yield* stored(valid, prepared)
      return ids.map((id) => MessageId.make(id, true))
    })

  return { send, sendBatch }
}
