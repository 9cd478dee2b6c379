/**
 * The `consume` runner: a scoped worker that leases messages as handler slots free up, runs the
 * handler, archives (or deletes) on success, releases with growing backoff on failure, and lets
 * the queue dead-letter a message past its max deliveries.
 *
 * - Wake-ups: a send signals consumers (LISTEN/NOTIFY on PostgreSQL, in-process elsewhere); a
 *   bounded poll (`pollInterval`) is the fallback across processes and for lost signals.
 * - A handler that runs long keeps its lease: it is extended every half visibility timeout. If the
 *   lease is lost anyway (another process declared this worker stale), the handler is interrupted
 *   and its result is not acknowledged.
 * - The worker is registered with a heartbeat; a maintenance pass runs periodically so the leases
 *   of crashed workers come back before their visibility timeout.
 * - Closing the scope (or interrupting the fiber that owns it) shuts down gracefully: no new reads,
 *   in-flight handlers get `shutdownTimeout` to finish and are then interrupted and their messages
 *   released, and the worker deregisters.
 */
import {
  Cause,
  DateTime,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  FiberSet,
  Queue,
  Random,
  Ref,
  Schedule,
  type Scope,
  Stream
} from "effect"
import { duration, optionalDuration, optionalInteger } from "./internal/validate.js"
import {
  type Lease,
  type Leased,
  type MaintenanceReport,
  maxVisibilityTimeoutMs,
  type QueueInfo,
  type QueueName,
  type ReleaseOutcome
} from "./Message.js"
import {
  InvalidOption,
  type InvalidQueueName,
  type LeaseLost,
  type QueueNotFound,
  type QueueStoreError,
  type WorkerIdInUse
} from "./QueueError.js"

/** Options of `consume`. */
export interface ConsumeOptions {
  /** Handlers running at once, from 1 to 1000. Default 1. */
  readonly concurrency?: number | undefined
  /** Lease length of each read. Default: the queue's visibility timeout. */
  readonly visibilityTimeout?: Duration.DurationInput | undefined
  /** The longest wait between reads when no signal arrives, from 1 ms to 1 hour. Default 1 s. */
  readonly pollInterval?: Duration.DurationInput | undefined
  /** A stable worker id; default a random UUID. */
  readonly workerId?: string | undefined
  /** Heartbeat period. Default 5 s. */
  readonly heartbeatInterval?: Duration.DurationInput | undefined
  /** Without a heartbeat this long, the worker is stale and its leases are released. Default 30 s. */
  readonly workerTimeout?: Duration.DurationInput | undefined
  /** How often this consumer runs a maintenance pass. Default 30 s. */
  readonly maintenanceInterval?: Duration.DurationInput | undefined
  /** On shutdown, how long in-flight handlers may run before they are interrupted. Default 10 s. */
  readonly shutdownTimeout?: Duration.DurationInput | undefined
  /** A handler running longer fails (and its message is released with backoff). Default: no limit. */
  readonly handlerTimeout?: Duration.DurationInput | undefined
  /** Delay before a failed message is retried: `initial` × 2^(deliveries − 1), at most `max`, jittered. */
  readonly backoff?:
    | {
        readonly initial?: Duration.DurationInput | undefined
        readonly max?: Duration.DurationInput | undefined
      }
    | undefined
  /** What happens to a message whose handler succeeded. Default `archive`. */
  readonly onSuccess?: "archive" | "delete" | undefined
  /** Observes each step of each delivery (for logs, traces, tests); runs inline, so keep it quick. */
  readonly onEvent?: ((event: ConsumerEvent) => Effect.Effect<void>) | undefined
}

/** A step of one delivery, as `onEvent` sees it. */
export type ConsumerEvent =
  /** The message was leased and its handler is starting. */
  | { readonly _tag: "Leased"; readonly message: Leased }
  /** The lease was extended to `visibleAt` (epoch ms). */
  | { readonly _tag: "Extended"; readonly message: Leased; readonly visibleAt: number }
  /** The handler succeeded and the message was archived or deleted. */
  | { readonly _tag: "Acknowledged"; readonly message: Leased; readonly action: "archive" | "delete" }
  /** The handler failed; the message was released with `delay` (ms) or dead-lettered. */
  | {
      readonly _tag: "Failed"
      readonly message: Leased
      readonly error: string
      readonly outcome: ReleaseOutcome
      readonly delay: number
    }
  /** Shutdown interrupted the handler; the message was released unprocessed. */
  | { readonly _tag: "Released"; readonly message: Leased }
  /** The lease was lost before the delivery could be settled; nothing was acknowledged. */
  | { readonly _tag: "LeaseLost"; readonly message: Leased }

/** Counts of what a consumer did. */
export interface ConsumerStats {
  /** Handlers that succeeded and whose message was acknowledged. */
  readonly processed: number
  /** Handlers that failed (the message was released with backoff, or dead-lettered). */
  readonly failed: number
  /** Failed messages that were dead-lettered. */
  readonly deadLettered: number
  /** Messages released unprocessed at shutdown. */
  readonly released: number
  /** Deliveries whose lease was lost before they could be acknowledged. */
  readonly leaseLost: number
}

/** A running consumer. */
export interface Consumer {
  readonly workerId: string
  readonly stats: Effect.Effect<ConsumerStats>
}

/** The queue operations a consumer uses (a subset of the service). */
export interface Operations {
  readonly queueName: (name: string) => Effect.Effect<QueueName, InvalidQueueName>
  readonly getQueue: (
    name: string
  ) => Effect.Effect<QueueInfo, InvalidQueueName | QueueNotFound | QueueStoreError>
  readonly read: (
    queue: string,
    options: { readonly qty: number; readonly visibilityTimeout: number; readonly workerId: string }
  ) => Effect.Effect<
    ReadonlyArray<Leased>,
    InvalidQueueName | QueueNotFound | InvalidOption | QueueStoreError
  >
  readonly archive: (queue: string, lease: Lease) => Effect.Effect<void, AckFailure>
  readonly delete: (queue: string, lease: Lease) => Effect.Effect<void, AckFailure>
  readonly extendVisibility: (
    queue: string,
    lease: Lease,
    options: { readonly visibilityTimeout: number }
  ) => Effect.Effect<DateTime.Utc, AckFailure>
  readonly release: (
    queue: string,
    lease: Lease,
    options: { readonly delay: number; readonly error?: string }
  ) => Effect.Effect<ReleaseOutcome, AckFailure>
  readonly registerWorker: (options: {
    readonly queue: string
    readonly workerId?: string | undefined
    readonly heartbeatInterval?: Duration.DurationInput | undefined
    readonly workerTimeout?: Duration.DurationInput | undefined
  }) => Effect.Effect<
    { readonly id: string },
    InvalidQueueName | QueueNotFound | InvalidOption | WorkerIdInUse | QueueStoreError,
    Scope.Scope
  >
  readonly maintain: Effect.Effect<MaintenanceReport, QueueStoreError>
  readonly wakeups: (queue: QueueName) => Stream.Stream<void, QueueNotFound | QueueStoreError>
}

type AckFailure = InvalidQueueName | QueueNotFound | InvalidOption | LeaseLost | QueueStoreError

/** The text recorded as a failed delivery's last error: the failure's tag and message, or the cause. */
export const describeFailure = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.failureOption(cause)
  const error = failure._tag === "Some" ? failure.value : Cause.squash(cause)
  if (error instanceof Error) {
    const tag = "_tag" in error && typeof error._tag === "string" ? error._tag : error.name
    return failure._tag === "Some" ? `${tag}: ${error.message}` : `defect: ${tag}: ${error.message}`
  }
  if (Cause.isInterruptedOnly(cause)) return "interrupted"
  try {
    return JSON.stringify(error) ?? String(error)
  } catch {
    return String(error)
  }
}

type Outcome =
  | { readonly _tag: "Handled"; readonly exit: Exit.Exit<void, unknown> }
  | { readonly _tag: "LeaseLost" }

/** Builds `consume` over the queue's operations. */
export const make =
  (ops: Operations) =>
  <E, R>(
    queue: string,
    handler: (message: Leased) => Effect.Effect<void, E, R>,
    options: ConsumeOptions = {}
  ): Effect.Effect<
    Consumer,
    InvalidQueueName | QueueNotFound | InvalidOption | WorkerIdInUse | QueueStoreError,
    R | Scope.Scope
  > =>
    Effect.gen(function* () {
      const name = yield* ops.queueName(queue)
      const concurrency = yield* optionalInteger("concurrency", options.concurrency, { min: 1, max: 1000 }, 1)
      const pollMs = yield* optionalDuration(
        "pollInterval",
        options.pollInterval,
        { min: 1, max: 3_600_000 },
        1_000
      )
      const maintenanceMs = yield* optionalDuration(
        "maintenanceInterval",
        options.maintenanceInterval,
        { min: 10, max: 24 * 3_600_000 },
        30_000
      )
      const shutdownMs = yield* optionalDuration(
        "shutdownTimeout",
        options.shutdownTimeout,
        { min: 0, max: 3_600_000 },
        10_000
      )
      const handlerTimeoutMs =
        options.handlerTimeout === undefined
          ? undefined
          : yield* duration("handlerTimeout", options.handlerTimeout, { min: 1, max: 7 * 24 * 3_600_000 })
      const backoffInitialMs = yield* optionalDuration(
        "backoff.initial",
        options.backoff?.initial,
        { min: 0, max: 24 * 3_600_000 },
        1_000
      )
      const backoffMaxMs = yield* optionalDuration(
        "backoff.max",
        options.backoff?.max,
        { min: backoffInitialMs, max: 365 * 24 * 3_600_000 },
        Math.max(backoffInitialMs, 5 * 60_000)
      )
      const onSuccess = options.onSuccess ?? "archive"
      const emit = (event: ConsumerEvent): Effect.Effect<void> =>
        options.onEvent === undefined
          ? Effect.void
          : Effect.catchAllCause(options.onEvent(event), () => Effect.void)
      if (onSuccess !== "archive" && onSuccess !== "delete") {
        return yield* new InvalidOption({
          option: "onSuccess",
          value: String(onSuccess),
          expected: '"archive" or "delete"'
        })
      }
      const info = yield* ops.getQueue(name)
      const visibilityMs =
        options.visibilityTimeout === undefined
          ? Duration.toMillis(info.visibilityTimeout)
          : yield* duration("visibilityTimeout", options.visibilityTimeout, {
              min: 1,
              max: maxVisibilityTimeoutMs
            })

      const worker = yield* ops.registerWorker({
        queue: name,
        workerId: options.workerId,
        heartbeatInterval: options.heartbeatInterval,
        workerTimeout: options.workerTimeout
      })
      const context = yield* Effect.context<R>()
      const handlers = yield* FiberSet.make<void, never>()
      const wake = yield* Queue.sliding<void>(1)
      const slotFreed = yield* Queue.sliding<void>(1)
      const stopping = yield* Deferred.make<void>()
      const inFlight = yield* Ref.make(0)
      const stats = yield* Ref.make<ConsumerStats>({
        processed: 0,
        failed: 0,
        deadLettered: 0,
        released: 0,
        leaseLost: 0
      })
      const bump = (field: keyof ConsumerStats) => Ref.update(stats, (s) => ({ ...s, [field]: s[field] + 1 }))
      const log = (what: string) => (error: { readonly message: string }) =>
        Effect.logWarning(`consumer ${worker.id} on ${name}: ${what}`, error.message)

      const backoff = (deliveries: number) =>
        Effect.map(Random.nextRange(0.75, 1), (jitter) =>
          Math.floor(Math.min(backoffMaxMs, backoffInitialMs * 2 ** Math.min(deliveries - 1, 40)) * jitter)
        )

      /** Extends the lease every half visibility timeout; signals `lost` when the lease is gone. */
      const keepLease = (message: Leased, lost: Deferred.Deferred<void>) =>
        Effect.gen(function* () {
          while (true) {
            yield* Effect.sleep(Duration.millis(Math.max(1, Math.floor(visibilityMs / 2))))
            const extended = yield* Effect.either(
              ops.extendVisibility(name, message, { visibilityTimeout: visibilityMs })
            )
            if (extended._tag === "Right") {
              yield* emit({ _tag: "Extended", message, visibleAt: DateTime.toEpochMillis(extended.right) })
            } else {
              if (extended.left._tag === "LeaseLost" || extended.left._tag === "QueueNotFound") {
                yield* Deferred.succeed(lost, undefined)
                return
              }
              yield* log("extending a lease failed")(extended.left)
            }
          }
        })

      const runHandler = (message: Leased): Effect.Effect<void, unknown> => {
        const run = Effect.provide(handler(message), context)
        return handlerTimeoutMs === undefined ? run : Effect.timeout(run, Duration.millis(handlerTimeoutMs))
      }

      const lostLease = (message: Leased) =>
        Effect.zipRight(bump("leaseLost"), emit({ _tag: "LeaseLost", message }))

      /** Settles one delivery after its handler ended (uninterruptible: a lease is never left behind silently). */
      const settle = (message: Leased, outcome: Exit.Exit<Outcome>) =>
        Effect.gen(function* () {
          if (Exit.isFailure(outcome)) {
            // Interrupted by shutdown before the handler finished: give the message back, unprocessed.
            yield* Effect.matchEffect(ops.release(name, message, { delay: 0 }), {
              onSuccess: () => Effect.zipRight(bump("released"), emit({ _tag: "Released", message })),
              onFailure: (error) =>
                error._tag === "LeaseLost" ? lostLease(message) : log("releasing at shutdown failed")(error)
            })
            return
          }
          if (outcome.value._tag === "LeaseLost") {
            yield* lostLease(message)
            return
          }
          const exit = outcome.value.exit
          if (Exit.isSuccess(exit)) {
            const acknowledge =
              onSuccess === "archive" ? ops.archive(name, message) : ops.delete(name, message)
            yield* Effect.matchEffect(acknowledge, {
              onSuccess: () =>
                Effect.zipRight(
                  bump("processed"),
                  emit({ _tag: "Acknowledged", message, action: onSuccess })
                ),
              onFailure: (error) =>
                error._tag === "LeaseLost" ? lostLease(message) : log("acknowledging failed")(error)
            })
            return
          }
          yield* bump("failed")
          const delay = yield* backoff(message.deliveries)
          const error = describeFailure(exit.cause)
          yield* Effect.matchEffect(ops.release(name, message, { delay, error }), {
            onSuccess: (released) =>
              Effect.zipRight(
                released === "dead" ? bump("deadLettered") : Effect.void,
                emit({ _tag: "Failed", message, error, outcome: released, delay })
              ),
            onFailure: (failure) =>
              failure._tag === "LeaseLost"
                ? lostLease(message)
                : log("releasing a failed message failed")(failure)
          })
        })

      const handle = (message: Leased) =>
        Effect.uninterruptibleMask((restore) =>
          Effect.gen(function* () {
            const lost = yield* Deferred.make<void>()
            yield* emit({ _tag: "Leased", message })
            const keeper = yield* Effect.fork(Effect.interruptible(keepLease(message, lost)))
            const outcome = yield* restore(
              Effect.raceFirst(
                Effect.map(Effect.exit(runHandler(message)), (exit): Outcome => ({ _tag: "Handled", exit })),
                Effect.as(Deferred.await(lost), { _tag: "LeaseLost" } as const)
              )
            ).pipe(Effect.exit)
            yield* Fiber.interrupt(keeper)
            yield* settle(message, outcome)
          }).pipe(
            Effect.ensuring(
              Effect.zipRight(
                Ref.update(inFlight, (n) => n - 1),
                Queue.offer(slotFreed, undefined)
              )
            )
          )
        )

      const waitFor = (signal: Queue.Queue<void>, timeout: number | undefined) =>
        Effect.raceAll([
          Queue.take(signal),
          Deferred.await(stopping),
          ...(timeout === undefined ? [] : [Effect.sleep(Duration.millis(timeout))])
        ])

      const loop = Effect.gen(function* () {
        while (!(yield* Deferred.isDone(stopping))) {
          const free = concurrency - (yield* Ref.get(inFlight))
          if (free <= 0) {
            yield* waitFor(slotFreed, undefined)
            continue
          }
          const read = yield* Effect.either(
            ops.read(name, { qty: free, visibilityTimeout: visibilityMs, workerId: worker.id })
          )
          if (read._tag === "Left") {
            yield* log("reading failed")(read.left)
            yield* waitFor(wake, pollMs)
            continue
          }
          const messages = read.right
          // Counted and forked without a gap, so shutdown sees every leased message. Forked fibers
          // inherit this region's uninterruptibility, so each handler fiber is made interruptible.
          yield* Effect.uninterruptible(
            Effect.forEach(
              messages,
              (message) =>
                Effect.zipRight(
                  Ref.update(inFlight, (n) => n + 1),
                  FiberSet.run(handlers, Effect.interruptible(handle(message)))
                ),
              { discard: true }
            )
          )
          if (messages.length < free) yield* waitFor(wake, pollMs)
        }
      })

      const listener = Effect.forever(
        Effect.zipRight(
          Stream.runForEach(ops.wakeups(name), () => Queue.offer(wake, undefined)).pipe(
            Effect.catchAll(log("listening for wake-ups failed; polling only"))
          ),
          Effect.sleep(Duration.millis(Math.max(pollMs, 1_000)))
        )
      )
      const maintenance = Effect.repeat(
        Effect.zipRight(
          Effect.sleep(Duration.millis(maintenanceMs)),
          Effect.catchAll(ops.maintain, log("maintenance failed"))
        ),
        Schedule.forever
      )

      yield* Effect.forkScoped(listener)
      yield* Effect.forkScoped(maintenance)
      const reader = yield* Effect.forkScoped(loop)

      yield* Effect.addFinalizer(() =>
        Effect.gen(function* () {
          yield* Deferred.succeed(stopping, undefined)
          yield* Fiber.await(reader)
          const idle = Effect.gen(function* () {
            while ((yield* Ref.get(inFlight)) > 0) yield* Queue.take(slotFreed)
          })
          // Finalizers are uninterruptible, and a timeout works by interrupting its effect: the
          // bounded wait runs in a fiber of its own, where the timeout can cut it short. Handlers
          // still running after it are interrupted, and release their messages.
          const grace = yield* Effect.fork(
            Effect.timeoutOption(Effect.interruptible(idle), Duration.millis(shutdownMs))
          )
          yield* Fiber.join(grace)
          yield* FiberSet.clear(handlers)
        })
      )

      return { workerId: worker.id, stats: Ref.get(stats) }
    })
