/**
 * `set` (memory only, at once) and `flush` (every dirty cursor in one transaction, monotonic):
 * the debounce. Memory moves only after COMMIT: a peer is clean when memory still holds what was
 * written (or something the database already has); a newer position set meanwhile stays dirty.
 */

import type { Retry as RetryModule } from "@keel/sql"
import * as Retry from "@keel/sql/Retry"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import {
  type CursorStoreError,
  type FlushFailed,
  type InvalidPeer,
  type InvalidPosition,
  StoreClosed
} from "../CursorError.js"
import type * as CursorStore from "../CursorStore.js"
import * as Peer from "../Peer.js"
import type { FlushResult, SetResult, StaleWrite } from "../Schemas.js"
import { declaring, type Env, flushFailed, guardOf } from "./env.js"
import type { Entry, State } from "./state.js"

/** Records `position` for `peer` in memory if it is after the one held. */
export const set =
  (env: Env) =>
  (
    peerText: string,
    positionText: string
  ): Effect.Effect<SetResult, InvalidPeer | InvalidPosition | StoreClosed> => {
    const peer = Peer.parse(peerText)
    if (Either.isLeft(peer)) return Effect.fail(peer.left)
    const position = env.rules.parse(positionText)
    if (Either.isLeft(position)) return Effect.fail(position.left)
    const entry: Entry = { position: position.right, key: env.rules.key(position.right), dirty: true }
    const target = peer.right
    const rules = env.rules
    return Effect.flatMap(
      env.memory.transition((memory): SetResult | undefined => {
        if (memory.closed) return undefined
        const held = memory.cursors.get(target)
        if (held !== undefined) {
          const comparison = rules.compare(entry, held)
          if (comparison !== "after") {
            const stale = comparison !== "equal"
            if (stale) memory.count((counters) => ({ ...counters, staleSets: counters.staleSets + 1 }))
            return { peer: target, outcome: stale ? "stale" : "unchanged", position: held.position }
          }
        }
        memory.put(target, entry)
        return { peer: target, outcome: "advanced", position: entry.position }
      }),
      (result): Effect.Effect<SetResult, StoreClosed> => {
        if (result === undefined) return Effect.fail(new StoreClosed({ namespace: env.namespace }))
        return result.outcome === "stale"
          ? Effect.as(Metric.increment(env.metrics.staleSets), result)
          : Effect.succeed(result)
      }
    )
  }

/** `policy`, counting a retry each time it decides to re-run the flush transaction. */
const countingRetries = (env: Env, policy: RetryModule.Policy): RetryModule.Policy =>
  Schedule.onDecision(policy, (_, decision) =>
    ScheduleDecision.isContinue(decision)
      ? Effect.zipRight(
          Metric.increment(env.metrics.retries),
          env.memory.count((counters) => ({ ...counters, retries: counters.retries + 1 }))
        )
      : Effect.void
  )

/** The dirty cursors of `memory`, as writes. */
const dirtyWrites = (memory: State): Array<CursorStore.Write> => {
  const pending: Array<CursorStore.Write> = []
  for (const peer of memory.pending) {
    const entry = memory.cursors.get(peer)
    if (entry !== undefined) pending.push({ peer, position: entry.position, key: entry.key })
  }
  return pending
}

const nothingDirty: FlushResult = { flushed: 0, persisted: 0, stale: [] }

/**
 * What a flush does once its transaction has ended, `elapsed` ms after it began: the metrics and
 * counters, and on commit memory (a peer is clean when memory still holds what was written, or
 * something the database already has; a newer position set meanwhile stays dirty).
 */
const settle = (
  env: Env,
  pending: ReadonlyArray<CursorStore.Write>,
  elapsed: number,
  outcome: Either.Either<CursorStore.Persisted, CursorStoreError>
): Effect.Effect<FlushResult, FlushFailed> =>
  Effect.gen(function* () {
    yield* Metric.update(env.metrics.flushLatency, Duration.millis(elapsed))
    if (Either.isLeft(outcome)) {
      yield* Metric.increment(env.metrics.failedFlushes)
      yield* env.memory.count((counters) => ({
        ...counters,
        failedFlushes: counters.failedFlushes + 1,
        lastFlushMillis: elapsed
      }))
      return yield* flushFailed(env, pending.length)(outcome.left)
    }
    const { advanced, others } = outcome.right
    const storedByPeer = new Map(others.map((row) => [row.peer, row]))
    const stale: Array<StaleWrite> = []
    const rules = env.rules
    yield* env.memory.transition((memory) => {
      for (const write of pending) {
        const held = memory.cursors.get(write.peer)
        if (held === undefined) continue
        if (advanced.has(write.peer)) {
          if (rules.compare(held, write) === "equal") memory.put(write.peer, { ...held, dirty: false })
          continue
        }
        const row = storedByPeer.get(write.peer)
        if (row === undefined) continue
        if (rules.compare(row, write) !== "equal")
          stale.push({ peer: write.peer, position: write.position, stored: row.position })
        // The database is at or past memory (or, for a map, not behind it): adopt it.
        const comparison = rules.compare(held, row)
        if (comparison === "before" || comparison === "equal" || comparison === "incomparable") {
          memory.put(write.peer, { position: row.position, key: row.key, dirty: false })
        }
      }
      memory.count((counters) => ({
        ...counters,
        flushes: counters.flushes + 1,
        rowsFlushed: counters.rowsFlushed + advanced.size,
        staleFlushes: counters.staleFlushes + stale.length,
        lastFlushMillis: elapsed
      }))
    })
    yield* Metric.increment(env.metrics.committedFlushes)
    yield* Metric.incrementBy(env.metrics.rowsFlushed, advanced.size)
    if (stale.length > 0) yield* Metric.incrementBy(env.metrics.staleFlushes, stale.length)
    return { flushed: pending.length, persisted: advanced.size, stale }
  })

/** Persists every dirty cursor (see the module doc); the caller holds the writer permit. */
const flushDirty = (env: Env): Effect.Effect<FlushResult, FlushFailed> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function* () {
      const pending = dirtyWrites(yield* env.memory.current)
      if (pending.length === 0) return nothingDirty
      const policy = countingRetries(env, yield* Retry.CurrentPolicy)
      const started = yield* Clock.currentTimeMillis
      const guard = yield* guardOf(env, policy)
      const outcome = yield* restore(
        declaring(env, env.storage.persist(env.namespace, pending, started, env.rules, guard))
      ).pipe(Effect.either)
      return yield* settle(env, pending, (yield* Clock.currentTimeMillis) - started, outcome)
    })
  )

/**
 * `flushDirty` in the caller's synchronous step (`CursorStore.Storage.persistNow`), for a store
 * that is no fenced writer and owes no declaration; the caller holds the writer permit. `None`
 * when it cannot run now (the session is held) or its transaction failed and provably rolled back:
 * nothing persisted, and `flushDirty` is the way (with its retries). A flush whose commit may have
 * happened is never run again: it fails.
 */
const flushNow = (
  env: Env,
  persistNow: NonNullable<CursorStore.Storage["persistNow"]>
): Effect.Effect<Option.Option<FlushResult>, FlushFailed> =>
  Effect.uninterruptible(
    Effect.clockWith((clock) =>
      Effect.flatMap(env.memory.current, (memory) => {
        const pending = dirtyWrites(memory)
        if (pending.length === 0) return Effect.succeed(Option.some(nothingDirty))
        const started = clock.unsafeCurrentTimeMillis()
        const ran = persistNow(env.namespace, pending, started, env.rules)
        if (Option.isNone(ran)) return Effect.succeed(Option.none())
        return Effect.flatMap(Effect.either(ran.value), (outcome) =>
          Either.isLeft(outcome) && outcome.left.cause._tag !== "CommitOutcomeUnknown"
            ? Effect.succeed(Option.none())
            : Effect.asSome(settle(env, pending, clock.unsafeCurrentTimeMillis() - started, outcome))
        )
      })
    )
  )

/** Persists every dirty cursor in one transaction, serialized with the other writes of the store. */
export const flush = (env: Env): Effect.Effect<FlushResult, FlushFailed> => {
  const slow = env.writer.withPermits(1)(flushDirty(env))
  const persistNow = env.storage.persistNow
  if (persistNow === undefined || env.fence !== undefined) return slow
  const now = env.writer.withPermitsIfAvailable(1)(flushNow(env, persistNow))
  return Effect.flatMap(Ref.get(env.undeclared), (undeclared) =>
    Option.isSome(undeclared)
      ? slow
      : Effect.flatMap(now, (ran) =>
          Option.isSome(ran) && Option.isSome(ran.value) ? Effect.succeed(ran.value.value) : slow
        )
  )
}
