/**
 * The programs of `keel queue …` (loaded on demand): each provides only the database and the
 * queue service. JSON documents carry durations and timestamps as milliseconds, as the queue's
 * schemas encode them.
 */

import type { Options as QueueOptions } from "@keel/queue"
import * as Queue from "@keel/queue/Queue"
import * as Schemas from "@keel/queue/Schemas"
import * as Retry from "@keel/sql/Retry"
import * as Arr from "effect/Array"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type {
  AckInput,
  CancelInput,
  ConfigureInput,
  CreateInput,
  DeadListInput,
  DeadRequeueInput,
  DropInput,
  ExtendInput,
  InfoInput,
  ListInput,
  MetricsInput,
  ProgressInput,
  PurgeInput,
  ReadInput,
  ReleaseInput,
  SendBatchInput,
  SendInput,
  ShowInput,
  UpdateInput,
  WorkersInput
} from "../commands/Queue.js"
import { InvalidInput } from "../Failure.js"
import * as Input from "../Input.js"
import * as Layers from "../Layers.js"
import * as Output from "../Output.js"
import * as Parse from "../Parse.js"
import { infoTable, settingsOf } from "./QueueSettings.js"

const withQueue = <E, R>(program: Effect.Effect<void, E, R>) => Effect.provide(program, Layers.queue)

/**
 * `writes` as one transaction (the queue's writes join it), re-run only when it provably rolled
 * back: a command that fails part-way (a bad message after `--create` made the queue, the second
 * 10,000 of a batch) leaves nothing behind.
 */
const atomically = <A, E, R>(writes: Effect.Effect<A, E, R>) => Retry.run(Retry.transaction(writes))

const encodeInfo = Schema.encodeSync(Schemas.QueueInfo)
const encodeLeased = Schema.encodeSync(Schemas.Leased)
const encodeArchived = Schema.encodeSync(Schemas.ArchivedMessage)
const encodeMetrics = Schema.encodeSync(Schemas.QueueMetrics)
const encodeWorker = Schema.encodeSync(Schemas.Worker)
const encodeRemoved = Schema.encodeSync(Schemas.Removed)

const iso = (value: DateTime.Utc): string => DateTime.formatIso(value)

/** A payload as one line of JSON, cut to `limit` characters for tables. */
const preview = (payload: unknown, limit = 80): string => {
  const text = Output.json(payload)
  return text.length > limit ? `${text.slice(0, limit - 1)}…` : text
}

const metricsTable = (metrics: ReadonlyArray<Schemas.QueueMetrics>): string =>
  Output.table(
    ["QUEUE", "DEPTH", "IN FLIGHT", "DELAYED", "OLDEST (ms)", "ARCHIVED", "DEAD"],
    metrics.map((row) => [
      row.queue,
      String(row.depth),
      String(row.inFlight),
      String(row.delayed),
      Output.orDash(row.oldestMessageAgeMs),
      String(row.archived),
      String(row.dead)
    ])
  )

/** `keel queue create`. */
export const create = (input: CreateInput) =>
  withQueue(
    Effect.gen(function* () {
      const queues = yield* Queue.Queues
      const settings = yield* settingsOf(input)
      const info = input.ifNotExists
        ? yield* queues.ensureQueue(input.queue, settings)
        : yield* queues.createQueue(input.queue, settings)
      yield* Output.confirmation({ queue: encodeInfo(info) }, () => `queue ${info.name} is ready`)
    })
  )

/** `keel queue configure`: absent flags keep their value. */
export const configure = (input: ConfigureInput) =>
  withQueue(
    Effect.gen(function* () {
      const settings = yield* settingsOf(input)
      const info = yield* (yield* Queue.Queues).updateQueue(input.queue, settings)
      yield* Output.confirmation({ queue: encodeInfo(info) }, () => `queue ${info.name} is configured`)
    })
  )

/** `keel queue list`. */
export const list = (_input: ListInput) =>
  withQueue(
    Effect.gen(function* () {
      const queues = yield* (yield* Queue.Queues).listQueues
      yield* Output.result({ queues: queues.map((queue) => encodeInfo(queue)) }, () =>
        queues.length === 0 ? "" : infoTable(queues)
      )
    })
  )

/** `keel queue info`. */
export const info = (input: InfoInput) =>
  withQueue(
    Effect.gen(function* () {
      const queues = yield* Queue.Queues
      const queue = yield* queues.getQueue(input.queue)
      const metrics = yield* queues.metrics(input.queue)
      yield* Output.result({ queue: encodeInfo(queue), metrics: encodeMetrics(metrics) }, () =>
        [infoTable([queue]), "", metricsTable([metrics])].join("\n")
      )
    })
  )

const isBackoffKind = Schema.is(Schemas.BackoffKind)

/**
 * A backoff option: `KIND[:BASE[:MAX]]`, e.g. `fixed:30s`, `exponential:1s:1h`, `linear:10s`;
 * anything else is `InvalidInput` naming `--option`. Bounds are the queue's to check.
 */
const parseBackoff = (
  option: string,
  text: Option.Option<string>
): Either.Either<QueueOptions.BackoffOptions | undefined, InvalidInput> => {
  if (Option.isNone(text)) return Either.right(undefined)
  const [kind = "", base, max, ...rest] = text.value.split(":")
  if (rest.length > 0 || !isBackoffKind(kind)) {
    return Either.left(
      new InvalidInput({
        source: `--${option}`,
        reason: `${JSON.stringify(text.value)} is not KIND[:BASE[:MAX]] with KIND exponential, linear or fixed (e.g. fixed:30s, exponential:1s:1h)`
      })
    )
  }
  return Either.gen(function* () {
    return {
      kind,
      base: base === undefined ? undefined : yield* Parse.duration(option, base),
      max: max === undefined ? undefined : yield* Parse.duration(option, max)
    }
  })
}

/** `keel queue send`: the payload from the argument, else all of stdin. */
export const send = (input: SendInput) =>
  withQueue(
    Effect.gen(function* () {
      const text = yield* Option.match(input.payload, {
        onNone: () => Input.stdin("a JSON payload"),
        onSome: Effect.succeed
      })
      const payload = yield* Schemas.parsePayload(text)
      const queues = yield* Queue.Queues
      const options = {
        delay: yield* Parse.optionalDuration("delay", input.delay),
        priority: Option.getOrUndefined(input.priority),
        dedupKey: Option.getOrUndefined(input.dedupKey),
        dedupWindow: yield* Parse.optionalDuration("dedup-window", input.dedupWindow),
        dedupMode: Option.getOrUndefined(input.dedupMode),
        maxDeliveries: Option.getOrUndefined(input.maxDeliveries),
        backoff: yield* parseBackoff("backoff", input.backoff),
        group: Option.getOrUndefined(input.group)
      }
      const sent = queues.send(input.queue, payload, options)
      // With --create the queue and the message are made together or not at all.
      const id = input.create
        ? yield* atomically(Effect.zipRight(queues.ensureQueue(input.queue), sent))
        : yield* sent
      yield* Output.result({ queue: input.queue, id }, () => String(id))
    })
  )

const decodeEnvelope = Schema.decodeUnknownEither(Schemas.OutgoingMessage)

/**
 * `keel queue send-batch`: JSON lines from a file or stdin, all sent in one transaction (statements
 * of up to 10,000): a bad line anywhere, or any failure, stores nothing.
 */
export const sendBatch = (input: SendBatchInput) =>
  withQueue(
    Effect.gen(function* () {
      const source = Option.getOrElse(
        Option.filter(input.file, (file) => file !== "-"),
        () => "stdin"
      )
      const text = yield* Input.fileOrStdin(input.file, "JSON lines")
      const values = yield* Parse.jsonLines(text, source)
      const defaults = {
        delay: yield* Parse.optionalDuration("delay", input.delay),
        priority: Option.getOrUndefined(input.priority),
        maxDeliveries: Option.getOrUndefined(input.maxDeliveries),
        backoff: yield* parseBackoff("backoff", input.backoff),
        group: Option.getOrUndefined(input.group)
      }
      const messages = yield* Effect.forEach(values, (value, index) => {
        if (!input.envelopes) return Effect.succeed({ payload: value, ...defaults })
        return Either.match(decodeEnvelope(value), {
          onLeft: (error) =>
            Effect.fail(
              new InvalidInput({
                source: `${source} message ${index + 1}`,
                reason: `not an envelope {"payload": …, "delay"?, "priority"?, "dedupKey"?, "dedupWindow"?, "dedupMode"?}: ${error.message}`
              })
            ),
          onRight: (envelope) =>
            Effect.succeed({
              ...envelope,
              delay: envelope.delay ?? defaults.delay,
              priority: envelope.priority ?? defaults.priority,
              maxDeliveries: envelope.maxDeliveries ?? defaults.maxDeliveries,
              backoff: envelope.backoff ?? defaults.backoff,
              group: envelope.group ?? defaults.group
            })
        })
      })
      const queues = yield* Queue.Queues
      // No message still checks the queue (exit 1 when it does not exist, 2 for a bad name).
      const chunks = messages.length === 0 ? [[]] : Arr.chunksOf(messages, Schemas.maxBatchSize)
      const ids = yield* atomically(
        Effect.gen(function* () {
          if (input.create) yield* queues.ensureQueue(input.queue)
          return yield* Effect.forEach(chunks, (chunk) => queues.sendBatch(input.queue, chunk))
        })
      )
      const all = ids.flat()
      yield* Output.result({ queue: input.queue, ids: all }, () => all.join("\n"))
    })
  )

/** `keel queue read`. */
export const read = (input: ReadInput) =>
  withQueue(
    Effect.gen(function* () {
      const messages = yield* (yield* Queue.Queues).read(input.queue, {
        qty: Option.getOrUndefined(input.qty),
        visibilityTimeout: yield* Parse.optionalDuration("visibility-timeout", input.visibilityTimeout),
        workerId: Option.getOrUndefined(input.workerId)
      })
      yield* Output.result(
        { queue: input.queue, messages: messages.map((message) => encodeLeased(message)) },
        () =>
          messages.length === 0
            ? ""
            : Output.table(
                ["ID", "LEASE", "DELIVERIES", "VISIBLE AT", "PAYLOAD"],
                messages.map((message) => [
                  String(message.id),
                  message.lease,
                  String(message.deliveries),
                  iso(message.visibleAt),
                  preview(message.payload, 200)
                ])
              )
      )
    })
  )

/** `keel queue delete`. */
export const remove = (input: AckInput) =>
  withQueue(
    Effect.gen(function* () {
      yield* (yield* Queue.Queues).delete(input.queue, { id: input.id, lease: input.lease })
      yield* Output.confirmation(
        { queue: input.queue, id: input.id, action: "deleted" },
        () => `deleted message ${input.id}`
      )
    })
  )

/** `keel queue archive`. */
export const archive = (input: AckInput) =>
  withQueue(
    Effect.gen(function* () {
      yield* (yield* Queue.Queues).archive(input.queue, { id: input.id, lease: input.lease })
      yield* Output.confirmation(
        { queue: input.queue, id: input.id, action: "archived" },
        () => `archived message ${input.id}`
      )
    })
  )

/** `keel queue release`. */
export const release = (input: ReleaseInput) =>
  withQueue(
    Effect.gen(function* () {
      const outcome = yield* (yield* Queue.Queues).release(
        input.queue,
        { id: input.id, lease: input.lease },
        {
          delay: yield* Parse.optionalDuration("delay", input.delay),
          error: Option.getOrUndefined(input.error)
        }
      )
      yield* Output.confirmation({ queue: input.queue, id: input.id, outcome }, () =>
        outcome === "dead" ? `dead-lettered message ${input.id}` : `released message ${input.id}`
      )
    })
  )

/** `keel queue show`. */
export const show = (input: ShowInput) =>
  withQueue(
    Effect.gen(function* () {
      const message = yield* (yield* Queue.Queues).getMessage(input.queue, input.id)
      const encoded = yield* Schema.encode(Schemas.MessageInfo)(message).pipe(Effect.orDie)
      yield* Output.result({ message: encoded }, () =>
        [
          `id          ${message.id}`,
          `state       ${message.state}`,
          `priority    ${message.priority}`,
          `deliveries  ${message.deliveries} of ${message.maxDeliveries}`,
          `enqueued    ${DateTime.formatIso(message.enqueuedAt)}`,
          `available   ${DateTime.formatIso(message.availableAt)}`,
          `last error  ${message.lastError ?? "-"}`,
          `progress    ${message.progress === null ? "-" : JSON.stringify(message.progress)}`,
          `group       ${message.group ?? "-"}`,
          `payload     ${JSON.stringify(message.payload)}`
        ].join("\n")
      )
    })
  )

/** `keel queue progress`. */
export const progress = (input: ProgressInput) =>
  withQueue(
    Effect.gen(function* () {
      const value = yield* Schemas.parsePayload(input.progress)
      yield* (yield* Queue.Queues).progress(input.queue, { id: input.id, lease: input.lease }, value)
      yield* Output.confirmation(
        { queue: input.queue, id: input.id },
        () => `progress of message ${input.id} recorded`
      )
    })
  )

/** `keel queue cancel`. */
export const cancel = (input: CancelInput) =>
  withQueue(
    Effect.gen(function* () {
      const outcome = yield* (yield* Queue.Queues).cancel(input.queue, input.id)
      yield* Output.confirmation({ queue: input.queue, id: input.id, outcome }, () =>
        outcome === "cancelledRunning"
          ? `cancelled message ${input.id} (its running handler is interrupted)`
          : `cancelled message ${input.id}`
      )
    })
  )

/** `keel queue update`. */
export const update = (input: UpdateInput) =>
  withQueue(
    Effect.gen(function* () {
      yield* (yield* Queue.Queues).update(input.queue, input.id, {
        delay: yield* Parse.optionalDuration("delay", input.delay),
        priority: Option.getOrUndefined(input.priority)
      })
      yield* Output.confirmation({ queue: input.queue, id: input.id }, () => `updated message ${input.id}`)
    })
  )

/** `keel queue extend`. */
export const extend = (input: ExtendInput) =>
  withQueue(
    Effect.gen(function* () {
      const visibleAt = yield* (yield* Queue.Queues).extendVisibility(
        input.queue,
        { id: input.id, lease: input.lease },
        { visibilityTimeout: yield* Parse.optionalDuration("visibility-timeout", input.visibilityTimeout) }
      )
      yield* Output.result(
        { queue: input.queue, id: input.id, visibleAt: DateTime.toEpochMillis(visibleAt) },
        () => iso(visibleAt)
      )
    })
  )

/** `keel queue dead list`. */
export const deadList = (input: DeadListInput) =>
  withQueue(
    Effect.gen(function* () {
      const messages = yield* (yield* Queue.Queues).deadLetters(input.queue, {
        limit: Option.getOrUndefined(input.limit),
        before: Option.getOrUndefined(input.before)
      })
      yield* Output.result(
        { queue: input.queue, messages: messages.map((message) => encodeArchived(message)) },
        () =>
          messages.length === 0
            ? ""
            : Output.table(
                ["ID", "DELIVERIES", "DEAD SINCE", "LAST ERROR", "PAYLOAD"],
                messages.map((message) => [
                  String(message.id),
                  String(message.deliveries),
                  iso(message.archivedAt),
                  preview(message.lastError ?? "-", 60),
                  preview(message.payload)
                ])
              )
      )
    })
  )

/** `keel queue dead requeue`. */
export const deadRequeue = (input: DeadRequeueInput) =>
  withQueue(
    Effect.gen(function* () {
      const ids = yield* (yield* Queue.Queues).requeueDead(input.queue, {
        ids: input.ids.length === 0 ? undefined : input.ids,
        limit: Option.getOrUndefined(input.limit)
      })
      yield* Output.confirmation({ queue: input.queue, ids }, () =>
        ids.length === 0 ? "nothing to requeue" : `requeued ${ids.length} message(s): ${ids.join(", ")}`
      )
    })
  )

/** `keel queue purge`. */
export const purge = (input: PurgeInput) =>
  withQueue(
    Effect.gen(function* () {
      const removed = yield* (yield* Queue.Queues).purgeQueue(input.queue, { archive: input.archive })
      yield* Output.confirmation(
        { queue: input.queue, removed: encodeRemoved(removed) },
        () => `purged ${removed.messages} message(s) and ${removed.archived} archived from ${input.queue}`
      )
    })
  )

/** `keel queue drop`. */
export const drop = (input: DropInput) =>
  withQueue(
    Effect.gen(function* () {
      const removed = yield* (yield* Queue.Queues).deleteQueue(input.queue, { force: input.force })
      yield* Output.confirmation(
        { queue: input.queue, removed: encodeRemoved(removed) },
        () => `dropped queue ${input.queue} (${removed.messages} message(s), ${removed.archived} archived)`
      )
    })
  )

/** `keel queue metrics`. */
export const metrics = (input: MetricsInput) =>
  withQueue(
    Effect.gen(function* () {
      const queues = yield* Queue.Queues
      const rows = yield* Option.match(input.queue, {
        onNone: () => queues.metricsAll,
        onSome: (name) => Effect.map(queues.metrics(name), (row) => [row])
      })
      yield* Output.result({ metrics: rows.map((row) => encodeMetrics(row)) }, () =>
        rows.length === 0 ? "" : metricsTable(rows)
      )
    })
  )

/** `keel queue workers`. */
export const workers = (input: WorkersInput) =>
  withQueue(
    Effect.gen(function* () {
      const rows = yield* (yield* Queue.Queues).listWorkers(Option.getOrUndefined(input.queue))
      yield* Output.result({ workers: rows.map((row) => encodeWorker(row)) }, () =>
        rows.length === 0
          ? ""
          : Output.table(
              ["WORKER", "QUEUE", "HOST", "PID", "STARTED", "HEARTBEAT"],
              rows.map((row) => [
                row.id,
                Output.orDash(row.queue),
                row.host,
                String(row.pid),
                iso(row.startedAt),
                iso(row.heartbeatAt)
              ])
            )
      )
    })
  )
