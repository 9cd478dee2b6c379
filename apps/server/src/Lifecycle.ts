/**
 * The server's requests in flight and its shutdown. Every request is counted from the moment it
 * arrives until its response is written; `drain` marks the server as stopping (long polls return
 * at once, responses carry `Connection: close`) and waits until no request is left or the grace
 * period ends.
 */

import type { Duration } from "effect"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/** The service. */
export interface Service {
  /** Counts `effect` as one request in flight while it runs. */
  readonly track: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Requests in flight now. */
  readonly inFlight: Effect.Effect<number>
  /** True once `drain` has begun. */
  readonly stopping: Effect.Effect<boolean>
  /** Completes when `drain` begins (a long poll waits on it to return early). */
  readonly whenStopping: Effect.Effect<void>
  /**
   * Marks the server as stopping and waits until no request is in flight, for at most `grace`.
   * The requests still running when it returns (0 when every one completed).
   */
  readonly drain: (grace: Duration.DurationInput) => Effect.Effect<number>
}

/** The lifecycle of one server. */
export class Lifecycle extends Context.Tag("@keel/server/Lifecycle")<Lifecycle, Service>() {}

/**
 * A fresh lifecycle: nothing in flight, not stopping. The count is a plain number, changed only
 * by the fibers of this server (one thread), and `idle` is completed when it drops to zero while
 * the server stops: every request pays two increments, not two `SubscriptionRef` updates.
 */
export const make: Effect.Effect<Service> = Effect.gen(function* () {
  let count = 0
  const stop = yield* Deferred.make<void>()
  const idle = yield* Deferred.make<void>()
  let stopping = false
  const leave = Effect.sync(() => {
    count--
    if (stopping && count === 0) Deferred.unsafeDone(idle, Effect.void)
  })
  const track = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.uninterruptibleMask((restore) =>
      Effect.suspend(() => {
        count++
        return Effect.ensuring(restore(effect), leave)
      })
    )
  const drain = (grace: Duration.DurationInput) =>
    Effect.gen(function* () {
      stopping = true
      yield* Deferred.succeed(stop, undefined)
      if (count === 0) return 0
      // `drain` runs in a finalizer, which is uninterruptible: without `interruptible` the timeout
      // could not stop the wait and a stuck request would hold the shutdown forever.
      yield* Effect.timeoutOption(Effect.interruptible(Deferred.await(idle)), grace)
      return count
    })
  return {
    track,
    inFlight: Effect.sync(() => count),
    stopping: Effect.sync(() => stopping),
    whenStopping: Deferred.await(stop),
    drain
  }
})

/** The lifecycle as a layer. */
export const layer: Layer.Layer<Lifecycle> = Layer.effect(Lifecycle, make)
