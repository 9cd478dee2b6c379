/**
 * Effects that are already done. An `Exit` is an effect: work run in the caller's synchronous step
 * (`Transaction.planNow`, `Retry.planNow`, `GroupCommit.batcher`'s `now`) hands back its outcome as
 * one, and a caller that sees it is done can carry on in the same step instead of running it.
 */
import type * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"

/** True when `effect` is an `Exit`: its outcome is known without running it. */
export const isDone = <A, E, R>(effect: Effect.Effect<A, E, R>): effect is Exit.Exit<A, E> =>
  Exit.isExit(effect)
