/**
 * Sends: input checked synchronously (a send should not pay for an effect per check), then one
 * store operation. What is retried, grouped or run as one statement is the store's decision (see
 * `SqlQueueStore.ts`); here a send whose outcome the store could not confirm becomes
 * `SendOutcomeUnknown`, and a missing queue `QueueNotFound`.
 */
import * as Batch from "@keel/sql/Batch"
import * as Done from "@keel/sql/Done"
import * as Telemetry from "@keel/sql/Telemetry"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import type * as MetricLabel from "effect/MetricLabel"
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

/** What a send reads of the fiber that runs it: its clock and its metric labels. */
type Running = Pick<Fiber.RuntimeFiber<unknown, unknown>, "currentDefaultServices" | "getFiberRef">

/** The fiber's current time (its `Clock`, as `Clock.currentTimeMillis` reads it). */
const timeOf = (fiber: Running): number =>
  Context.get(fiber.currentDefaultServices, Clock.Clock).unsafeCurrentTimeMillis()

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

  /**
   * What the store's answer to a send of `count` messages becomes: `pick` of their ids (counted as
   * sent, with the labels of the sending fiber), `QueueNotFound`, or `SendOutcomeUnknown` when the
   * store cannot tell whether they were stored.
   */
  const settled =
    <A>(
      queue: QueueName,
      count: number,
      labels: ReadonlyArray<MetricLabel.MetricLabel>,
      pick: (ids: ReadonlyArray<number>) => A
    ) =>
    (
      stored: Exit.Exit<QueueStore.Sent | undefined, QueueStoreError>
    ): Exit.Exit<A, QueueNotFound | SendOutcomeUnknown | QueueStoreError> => {
      if (Exit.isFailure(stored)) {
        return Exit.failCause(
          Cause.map(stored.cause, (error) =>
            Predicate.isTagged(error.cause, "CommitOutcomeUnknown")
              ? new SendOutcomeUnknown({ queue, messages: count, reason: error.cause.message })
              : error
          )
        )
      }
      const sent = stored.value
      if (sent === undefined) return Exit.fail(new QueueNotFound({ queue }))
      Metrics.countNow(Metrics.sent, queue, count, labels)
      return Exit.succeed(pick(sent.ids))
    }

  /** The store's send, each message with the current trace context when tracing. */
  const storeSend = tracing
    ? (queue: QueueName, messages: ReadonlyArray<QueueStore.NewMessage>, now: number) =>
        Effect.flatMap(Telemetry.traceparent, (trace) =>
          store.send(
            queue,
            trace === undefined ? messages : messages.map((message) => ({ ...message, trace })),
            now
          )
        )
    : store.send
  // A traced send carries its context: it takes the store's ordinary path.
  const sendNow = tracing ? undefined : store.sendNow

  /**
   * The store's answer to a send of `count` messages, settled for the fiber that sent them (see
   * `settled`): in the same step when the answer is already an `Exit`, else once it has run.
   */
  const settle = <A>(
    fiber: Running,
    queue: QueueName,
    count: number,
    answer: Effect.Effect<QueueStore.Sent | undefined, QueueStoreError>,
    pick: (ids: ReadonlyArray<number>) => A
  ): Effect.Effect<A, QueueNotFound | SendOutcomeUnknown | QueueStoreError> => {
    const done = settled(queue, count, fiber.getFiberRef(FiberRef.currentMetricLabels), pick)
    return Done.isDone(answer) ? done(answer) : Effect.flatMap(Effect.exit(answer), done)
  }

  /** The id of a single send's message. */
  const onlyId = (ids: ReadonlyArray<number>): MessageId => {
    const id = ids[0]
    if (id === undefined) throw new Error("a send returned no id")
    return MessageId.make(id, true)
  }

  /**
   * Sends one message; its id. Checked, stored and answered in one synchronous step when the store
   * can (`QueueStore.Store.sendNow`): no effect runs between the check and the COMMIT.
   */
  const send = (
    queue: string,
    payload: unknown,
    options: SendOptions = {}
  ): Effect.Effect<MessageId, SendError> =>
    Effect.withFiberRuntime((fiber): Effect.Effect<MessageId, SendError> => {
      const valid = parseQueueName(queue)
      if (Either.isLeft(valid)) return Exit.fail(valid.left)
      const message = prepare(payload, options, "")
      if (Either.isLeft(message)) return Exit.fail(message.left)
      const name = valid.right
      const now = timeOf(fiber)
      const answer = sendNow?.(name, message.right, now) ?? storeSend(name, [message.right], now)
      return settle(fiber, name, 1, answer, onlyId)
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
      return yield* Effect.withFiberRuntime<ReadonlyArray<MessageId>, SendError>((fiber) =>
        settle(fiber, valid, prepared.length, storeSend(valid, prepared, timeOf(fiber)), (ids) =>
          ids.map((id) => MessageId.make(id, true))
        )
      )
    })

  return { send, sendBatch }
}
