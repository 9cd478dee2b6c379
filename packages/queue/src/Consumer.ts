/**
 * The `consume` runner: a scoped worker that leases messages in batches as handler slots free up,
 * runs the handler, archives (or deletes) on success, releases with growing backoff on failure,
 * and lets the queue dead-letter a message past its max deliveries.
 *
 * - Batched claims: one read leases every free slot at once, plus up to `prefetch` messages ahead
 *   while handlers are fast (the window doubles at each claim while handlers take under 5 ms on
 *   average, and halves when they are slower), so quick jobs cost a fraction of a read each and a
 *   message waits at most about `prefetch` × 5 ms / `concurrency` behind the running ones.
 * - Batched acknowledgements: a slot frees as soon as its handler ends; the acknowledgement goes
 *   on in that message's fiber, and acknowledgements of the same event-loop turn share one
 *   transaction (the store's group commit). One fiber per message, no per-message race.
 * - Wake-ups: a send signals consumers (LISTEN/NOTIFY on PostgreSQL, in-process elsewhere); a
 *   bounded poll (`pollInterval`) is the fallback across processes and for lost signals.
 * - One lease extender serves every message this consumer holds: every half visibility timeout it
 *   extends them all in one store operation. A message whose lease is lost anyway (another process
 *   declared this worker stale) has its handler interrupted and its result is not acknowledged.
 * - The worker is registered with a heartbeat; a maintenance pass runs periodically so the leases
 *   of crashed workers come back before their visibility timeout.
 * - Closing the scope (or interrupting the fiber that owns it) shuts down gracefully: no new reads,
 *   messages claimed ahead are released at once, running handlers get `shutdownTimeout` to finish
 *   and are then interrupted and their messages released, every acknowledgement in flight
 *   completes, and the worker deregisters.
 */

import * as Telemetry from "@keel/sql/Telemetry"
import type { Cause, Scope } from "effect"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Backoff from "./Backoff.js"
import { checkOptions } from "./internal/consumeOptions.js"
import * as Failure from "./internal/failure.js"
import type { ConsumeOptions } from "./Options.js"
import type {
  InvalidOption,
  InvalidQueueName,
  QueueNotFound,
  QueueStoreError,
  WorkerIdInUse
} from "./QueueError.js"
import type { Backoff as BackoffPolicy, Leased, ReleaseOutcome } from "./Schemas.js"

/** Options of `consume` (see `Options.ts`). */
export type { ConsumeOptions } from "./Options.js"

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

/** The queue operations a consumer uses (see `internal/operations.ts`). */
export type { Operations } from "./internal/operations.js"

import type { Operations } from "./internal/operations.js"

/** The text recorded as a failed delivery's last error: the failure's tag and message, or the cause. */
export const describeFailure = Failure.describeFailure

/** A handler's run in a span `keel.queue.handle`, a child of the span its message was sent in. */
const traceHandler = <E>(message: Leased, run: Effect.Effect<void, E>): Effect.Effect<void, E> => {
  const parent = Telemetry.parentOf(message.trace)
  return Effect.withSpan(run, "keel.queue.handle", {
    kind: "consumer",
    attributes: {
      "messaging.system": "keel",
      "messaging.destination.name": message.queue,
      "messaging.message.id": String(message.id),
      "messaging.keel.deliveries": message.deliveries
    },
    ...(parent === undefined ? {} : { parent })
  })
}

/** Handlers that take less than this on average (ms) widen the prefetch window; slower ones close it. */
const fastHandlerMs = 5

/** The message a worker is running, and why it may have been interrupted. */
interface Delivery {
  readonly message: Leased
  /** The lease was lost: the handler is interrupted, nothing is acknowledged. */
  lost: boolean
}

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
      const settings = yield* checkOptions(options)
      const { concurrency, prefetch, pollMs, shutdownMs, handlerTimeoutMs, onSuccess } = settings
      const visibilityMs =
        settings.visibilityMs ?? Duration.toMillis((yield* ops.getQueue(name)).visibilityTimeout)
      const worker = yield* ops.registerWorker({
        queue: name,
        workerId: options.workerId,
        heartbeatInterval: options.heartbeatInterval,
        workerTimeout: options.workerTimeout
      })
      const context = yield* Effect.context<R>()
      const workers = yield* FiberSet.make<void, never>()
      /** Claimed messages waiting for a worker. */
      const ready = yield* Queue.unbounded<Leased>()
      // Wake the claim loop (a worker finished, a signal arrived, shutdown began) and the acknowledger.
      const claimKick = yield* Queue.sliding<void>(1)
      const ackKick = yield* Queue.sliding<void>(1)
      // Wake the lease check (a leased message of this queue was cancelled).
      const checkKick = yield* Queue.sliding<void>(1)

      // The consumer's own state, touched only by its fibers on one thread between their steps.
      /** Every message leased whose handler has not ended yet, by id (what the extender extends). */
      const held = new Map<number, Leased>()
      /** Claimed messages whose lease was lost before a worker took them. */
      const dropped = new Set<number>()
      /** What each worker runs now. */
      const running = new Map<number, Delivery>()
      /** Handled successfully, to be acknowledged in the next batch. */
      let acks: Array<Leased> = []
      const counts = { processed: 0, failed: 0, deadLettered: 0, released: 0, leaseLost: 0 }
      let stopping = false
      let window = 0
      /** Handlers ended since the last claim, and their total time (ms): the pace the window follows. */
      let handled = 0
      let handlingMs = 0

      const kickClaims = () => {
        Queue.unsafeOffer(claimKick, undefined)
      }
      const emit = (event: ConsumerEvent): Effect.Effect<void> =>
        options.onEvent === undefined
          ? Effect.void
          : Effect.catchAllCause(options.onEvent(event), () => Effect.void)
      const log = (what: string) => (error: { readonly message: string }) =>
        Effect.logWarning(`consumer ${worker.id} on ${name}: ${what}`, error.message)
      const lostLease = (message: Leased) =>
        Effect.suspend(() => {
          counts.leaseLost++
          return emit({ _tag: "LeaseLost", message })
        })

      // The message's own backoff when it was sent with one, else the consumer's.
      const consumerBackoff: BackoffPolicy = {
        kind: "exponential",
        base: settings.backoffInitialMs,
        max: settings.backoffMaxMs,
        jitter: 0.25
      }
      const backoff = (message: Leased) =>
        Effect.map(Random.next, (random) =>
          Backoff.delayOf(message.backoff ?? consumerBackoff, message.deliveries, random)
        )

      const runHandler = (message: Leased): Effect.Effect<void, unknown> => {
        const handled = Effect.provide(handler(message), context)
        const run = ops.tracing ? traceHandler(message, handled) : handled
        return handlerTimeoutMs === undefined ? run : Effect.timeout(run, Duration.millis(handlerTimeoutMs))
      }

      /** Releases a delivery's message with backoff (or dead-letters it) after its handler failed. */
      const fail = (message: Leased, cause: Cause.Cause<unknown>) =>
        Effect.gen(function* () {
          counts.failed++
          const error = describeFailure(cause)
          const delay = yield* backoff(message)
          yield* Effect.matchEffect(ops.release(name, message, { delay, error }), {
            onSuccess: (outcome) => {
              if (outcome === "dead") counts.deadLettered++
              return emit({ _tag: "Failed", message, error, outcome, delay })
            },
            onFailure: (failure) =>
              failure._tag === "LeaseLost"
                ? lostLease(message)
                : log("releasing a failed message failed")(failure)
          })
        })

      /** Gives messages back unprocessed (shutdown), in one operation. */
      const giveBack = (messages: ReadonlyArray<Leased>) =>
        Effect.gen(function* () {
          if (messages.length === 0) return
          const released = yield* Effect.either(
            ops.settleEach(name, messages, { _tag: "Release", delayMs: 0, error: null })
          )
          if (released._tag === "Left")
            return yield* log("releasing messages at shutdown failed")(released.left)
          const lost = new Set(released.right?.lost ?? messages.map((message) => message.id))
          for (const message of messages) {
            if (lost.has(message.id)) yield* lostLease(message)
            else {
              counts.released++
              yield* emit({ _tag: "Released", message })
            }
          }
        })

      /**
       * A worker: takes claimed messages one at a time and runs the handler. Only the wait and the
       * handler are interruptible; an interrupted handler's message is given back (shutdown) or
       * given up (lost lease), and the worker ends. A success is queued for the next acknowledgement
       * batch, so the worker moves on at once.
       */
      const work = (slot: number): Effect.Effect<void> =>
        Effect.uninterruptibleMask((restore) =>
          Effect.gen(function* () {
            while (true) {
              const message = yield* restore(Queue.take(ready))
              if (dropped.delete(message.id)) {
                yield* lostLease(message)
                continue
              }
              const delivery: Delivery = { message, lost: false }
              running.set(slot, delivery)
              yield* emit({ _tag: "Leased", message })
              const startedAt = performance.now()
              const exit = yield* Effect.exit(restore(runHandler(message)))
              handled++
              handlingMs += performance.now() - startedAt
              if (running.get(slot) === delivery) running.delete(slot)
              held.delete(message.id)
              if (delivery.lost) {
                yield* lostLease(message)
              } else if (Exit.isSuccess(exit)) {
                acks.push(message)
                Queue.unsafeOffer(ackKick, undefined)
              } else if (Exit.isInterrupted(exit) && stopping) {
                yield* giveBack([message])
              } else {
                yield* fail(message, exit.cause)
              }
              kickClaims()
              if (Exit.isFailure(exit) && Exit.isInterrupted(exit)) return
            }
          })
        )

      /** The fiber of each worker slot. */
      const fibers = new Map<number, Fiber.RuntimeFiber<void, never>>()
      // Forked from uninterruptible regions too, whose status a fork inherits: each worker is made
      // interruptible, so that its waits and handlers can be interrupted.
      const startWorker = (slot: number) =>
        Effect.map(FiberSet.run(workers, Effect.interruptible(work(slot))), (fiber) => {
          fibers.set(slot, fiber)
        })

      /** Acknowledges every handled message in one store operation, until none is left. */
      const acknowledge = Effect.gen(function* () {
        while (acks.length > 0) {
          const batch = acks
          acks = []
          const settled = yield* Effect.either(
            ops.settleEach(name, batch, onSuccess === "archive" ? { _tag: "Archive" } : { _tag: "Delete" })
          )
          if (settled._tag === "Left") {
            // Not acknowledged: the messages come back after their visibility timeout (at least once).
            yield* log("acknowledging failed")(settled.left)
            continue
          }
          const lost = new Set(settled.right?.lost ?? batch.map((message) => message.id))
          for (const message of batch) {
            if (lost.has(message.id)) yield* lostLease(message)
            else {
              counts.processed++
              yield* emit({ _tag: "Acknowledged", message, action: onSuccess })
            }
          }
        }
      })
      // Only the wait is interruptible: a batch under way is always settled and counted.
      const acknowledger = Effect.forever(
        Effect.zipRight(Queue.take(ackKick), Effect.uninterruptible(acknowledge))
      )

      /** Waits for a kick, or at most `timeoutMs`. */
      const waitForKick = (timeoutMs: number | undefined) =>
        timeoutMs === undefined
          ? Queue.take(claimKick)
          : Effect.asVoid(Effect.timeoutOption(Queue.take(claimKick), Duration.millis(timeoutMs)))

      /** Leases for every free slot plus the prefetch window; the window follows the handlers' pace. */
      const claim = Effect.gen(function* () {
        const unstarted = held.size - running.size
        const wanted = concurrency + window - held.size
        if (unstarted >= concurrency || wanted <= 0) return yield* waitForKick(undefined)
        if (handled > 0) {
          window =
            handlingMs / handled < fastHandlerMs
              ? Math.min(prefetch, Math.max(1, window * 2))
              : Math.floor(window / 2)
          handled = 0
          handlingMs = 0
        }
        const read = yield* Effect.either(
          ops.take(name, { qty: wanted, visibilityTimeout: visibilityMs, workerId: worker.id })
        )
        if (read._tag === "Left") {
          yield* log("reading failed")(read.left)
          return yield* waitForKick(pollMs)
        }
        const { messages, throttledUntil } = read.right
        for (const message of messages) held.set(message.id, message)
        if (messages.length > 0) yield* Queue.offerAll(ready, messages)
        if (throttledUntil !== undefined) {
          // The queue's rate window is spent: nothing more until the next one opens.
          const now = yield* Clock.currentTimeMillis
          return yield* waitForKick(Math.min(pollMs, Math.max(1, throttledUntil - now)))
        }
        if (messages.length < wanted) yield* waitForKick(held.size === 0 ? pollMs : undefined)
      })

      /**
       * Gives up deliveries whose lease is gone (cancelled, or taken by another process after this
       * worker was declared stale): a running handler is interrupted and its result not acknowledged.
       */
      const giveUp = (message: Leased) =>
        Effect.gen(function* () {
          if (!held.delete(message.id)) return
          const slot = [...running].find(([, delivery]) => delivery.message.id === message.id)
          if (slot === undefined) {
            // Not started yet: the worker that takes it skips it.
            dropped.add(message.id)
            return
          }
          const [index, delivery] = slot
          delivery.lost = true
          // Interrupt that worker's handler; the worker gives the delivery up and ends, and a new
          // worker takes its slot at once.
          const fiber = fibers.get(index)
          if (fiber !== undefined) yield* Fiber.interruptFork(fiber)
          if (!stopping) yield* startWorker(index)
        })

      /** Extends every held lease in one operation; deliveries whose lease is gone are given up. */
      const extend = Effect.gen(function* () {
        const leases = [...held.values()]
        if (leases.length === 0) return
        const settled = yield* ops.settleEach(name, leases, { _tag: "Extend", visibilityMs })
        const lost = new Set(settled?.lost ?? leases.map((message) => message.id))
        for (const message of leases) {
          if (lost.has(message.id)) yield* giveUp(message)
          else yield* emit({ _tag: "Extended", message, visibleAt: settled?.visibleAt ?? 0 })
        }
      }).pipe(Effect.catchAll(log("extending leases failed")))

      /**
       * Checks, reading only, that every held lease is still held: at once when a leased message of
       * the queue is cancelled (a signal), else every poll interval while messages are held.
       */
      const check = Effect.gen(function* () {
        const leases = [...held.values()]
        if (leases.length === 0) return
        const lost = new Set(yield* ops.lostLeases(name, leases))
        for (const message of leases) if (lost.has(message.id)) yield* giveUp(message)
      }).pipe(Effect.catchAll(log("checking leases failed")))
      const checker = Effect.forever(
        Effect.zipRight(Effect.timeoutOption(Queue.take(checkKick), Duration.millis(pollMs)), check)
      )

      const loop = Effect.gen(function* () {
        while (!stopping) yield* claim
      })
      const listener = Effect.forever(
        Effect.zipRight(
          Stream.runForEach(ops.wakeups(name), (wakeup) =>
            Effect.sync(() => (wakeup === "cancel" ? Queue.unsafeOffer(checkKick, undefined) : kickClaims()))
          ).pipe(Effect.catchAll(log("listening for wake-ups failed; polling only"))),
          Effect.sleep(Duration.millis(Math.max(pollMs, 1_000)))
        )
      )
      const maintenance = Effect.repeat(
        Effect.zipRight(
          Effect.sleep(Duration.millis(settings.maintenanceMs)),
          Effect.catchAll(ops.maintain, log("maintenance failed"))
        ),
        Schedule.forever
      )
      const extender = Effect.forever(
        Effect.zipRight(Effect.sleep(Duration.millis(Math.max(1, Math.floor(visibilityMs / 2)))), extend)
      )

      for (let slot = 0; slot < concurrency; slot++) yield* startWorker(slot)
      yield* Effect.forkScoped(listener)
      yield* Effect.forkScoped(maintenance)
      yield* Effect.forkScoped(extender)
      yield* Effect.forkScoped(checker)
      const acker = yield* Effect.forkScoped(acknowledger)
      const reader = yield* Effect.forkScoped(loop)

      yield* Effect.addFinalizer(() =>
        Effect.gen(function* () {
          stopping = true
          kickClaims()
          yield* Fiber.interrupt(reader)
          // Claimed ahead, never started: back to the queue at once.
          const unstarted = [...(yield* Queue.takeAll(ready))].filter((message) => !dropped.has(message.id))
          for (const message of unstarted) held.delete(message.id)
          yield* giveBack(unstarted)
          const idle = Effect.gen(function* () {
            while (running.size > 0) yield* Effect.sleep(Duration.millis(5))
          })
          // Finalizers are uninterruptible, and a timeout works by interrupting its effect: the
          // bounded wait runs in a fiber of its own, where the timeout can cut it short.
          const grace = yield* Effect.fork(
            Effect.timeoutOption(Effect.interruptible(idle), Duration.millis(shutdownMs))
          )
          yield* grace.await
          // Workers still running a handler are interrupted and give their message back; then every
          // handled message is acknowledged before the worker deregisters.
          yield* FiberSet.clear(workers)
          yield* Fiber.interrupt(acker)
          yield* acknowledge
        })
      )

      return { workerId: worker.id, stats: Effect.sync(() => ({ ...counts })) }
    })
