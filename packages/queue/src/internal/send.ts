/**
 * Sends: input checked synchronously (a send should not pay for an effect per check), then one
 * store operation. What is retried, grouped or run as one statement is the store's decision (see
 * `SqlQueueStore.ts`); here a send whose outcome the store could not confirm becomes
 * `SendOutcomeUnknown`, and a missing queue `QueueNotFound`.
 */
import * as Batch from "@keel/sql/Batch"
import * as Telemetry from "@keel/sql/Telemetry"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Predicate from "effect/Predicate"
import * as Backoff from "../Backoff.js"
import * as Metrics from "../Metrics.js"
import { type OutgoingMessage, SendOptions } from "../Options.js"
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
import {
  describeInput,
  encodePayload,
  MessageId,
  maxBatchSize,
  parseQueueName,
  type QueueName
} from "../Schemas.js"
import { decoder } from "./optionSchema.js"

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

const decodeSendOptions = decoder(SendOptions)

/** The options of a send that gives none. */
const noOptions: typeof SendOptions.Type = {}

/** Whether `options` sets any option (a send without options skips decoding). */
const setsAny = (options: object): boolean => {
  for (const key in options) {
    if (key !== "payload" && Reflect.get(options, key) !== undefined) return true
  }
  return false
}

/** `dedupWindow` and `dedupMode` only with a `dedupKey`. */
const checkDedup = (
  options: typeof SendOptions.Type,
  given: SendOptions,
  prefix: string
): InvalidOption | undefined => {
  if (
    options.dedupKey !== undefined ||
    (options.dedupMode === undefined && options.dedupWindow === undefined)
  ) {
    return undefined
  }
  const option = options.dedupWindow !== undefined ? "dedupWindow" : "dedupMode"
  return new InvalidOption({
    option: `${prefix}${option}`,
    value: describeInput(given.dedupWindow ?? given.dedupMode),
    expected: `no ${option} without a dedupKey`
  })
}

/**
 * Sending over `store`: payloads up to `maxPayloadBytes`. With `tracing`, each message carries the
 * trace context it was sent in (without it, a send does no trace work at all).
 */
export const make = (store: QueueStore.Store, maxPayloadBytes: number, tracing = false) => {
  /**
   * Checks one message: its payload, then its options decoded (skipped when it sets none); the
   * first failure in field order is the one reported.
   */
  const prepare = (
    payload: unknown,
    options: SendOptions,
    field: string
  ): Either.Either<QueueStore.NewMessage, InvalidPayload | PayloadTooLarge | InvalidOption> => {
    const encoded = encodePayload(payload, maxPayloadBytes)
    if (Either.isLeft(encoded)) {
      const error = encoded.left
      return Either.left(
        error._tag === "InvalidPayload" && field !== ""
          ? new InvalidPayload({ reason: `${field}: ${error.reason}` })
          : error
      )
    }
    const prefix = prefixOf(field)
    const decoded = setsAny(options) ? decodeSendOptions(options, prefix) : Either.right(noOptions)
    if (Either.isLeft(decoded)) return Either.left(decoded.left)
    const checked = decoded.right
    const dedup = checkDedup(checked, options, prefix)
    if (dedup !== undefined) return Either.left(dedup)
    const backoff =
      checked.backoff === undefined || options.backoff === undefined
        ? Either.right(undefined)
        : Backoff.resolve(`${prefix}backoff`, checked.backoff, options.backoff)
    if (Either.isLeft(backoff)) return Either.left(backoff.left)
    return Either.right({
      payload: encoded.right,
      delayMs: checked.delay ?? 0,
      priority: checked.priority ?? 0,
      dedupKey: checked.dedupKey,
      dedupWindowMs: checked.dedupWindow,
      dedupMode: checked.dedupMode ?? "ignore",
      maxDeliveries: checked.maxDeliveries,
      backoff: backoff.right,
      group: checked.group
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
      const message = prepare(payload, options, "")
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
        prepare(message.payload, message, `messages[${index}]`)
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
