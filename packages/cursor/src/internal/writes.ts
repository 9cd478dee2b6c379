/**
 * `set` (memory only, at once) and `flush` (every dirty cursor in one transaction, monotonic):
 * the debounce. Memory moves only after COMMIT: a peer is clean when memory still holds what was
 * written (or something the database already has); a newer position set meanwhile stays dirty.
 */
import { Retry, type Retry as RetryModule } from "@keel/sql"
import { Clock, Duration, Effect, Either, HashMap, Metric, Option, Schedule, ScheduleDecision } from "effect"
import { type FlushFailed, type InvalidPeer, type InvalidPosition, StoreClosed } from "../CursorError.js"
import type * as CursorStore from "../CursorStore.js"
import * as Peer from "../Peer.js"
import type { FlushResult, SetResult, StaleWrite } from "../Schemas.js"
import { declaring, type Env, flushFailed, guardOf } from "./env.js"
import { type Entry, put, putAll, type State } from "./state.js"

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
      env.memory.transition((current): readonly [SetResult | undefined, State] => {
        if (current.closed) return [undefined, current]
        const held = HashMap.get(current.cursors, target)
        if (Option.isSome(held)) {
          const comparison = rules.compare(entry, held.value)
          if (comparison !== "after") {
            const stale = comparison !== "equal"
            const result: SetResult = {
              peer: target,
              outcome: stale ? "stale" : "unchanged",
              position: held.value.position
            }
            if (!stale) return [result, current]
            const counters = { ...current.counters, staleSets: current.counters.staleSets + 1 }
            return [result, { ...current, counters }]
          }
        }
        return [{ peer: target, outcome: "advanced", position: entry.position }, put(current, target, entry)]
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

/** Persists every dirty cursor (see the module doc); the caller holds the writer permit. */
const flushDirty = (env: Env): Effect.Effect<FlushResult, FlushFailed> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function* () {
      const snapshot = yield* env.memory.ref
      const pending: Array<CursorStore.Write> = []
      for (const peer of snapshot.pending) {
        const entry = HashMap.get(snapshot.cursors, peer)
        if (Option.isSome(entry)) pending.push({ peer, position: entry.value.position, key: entry.value.key })
      }
      if (pending.length === 0) return { flushed: 0, persisted: 0, stale: [] }
      const policy = countingRetries(env, yield* Retry.CurrentPolicy)
      const started = yield* Clock.currentTimeMillis
      const guard = yield* guardOf(env, policy)
      const outcome = yield* restore(
        declaring(env, env.storage.persist(env.namespace, pending, started, env.rules, guard))
      ).pipe(Effect.either)
      const elapsed = (yield* Clock.currentTimeMillis) - started
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
      yield* env.memory.transition((current): readonly [undefined, State] => {
        // Each peer appears once in `pending`: the changes can be applied together at the end.
        const changes: Array<readonly [Peer.Peer, Entry]> = []
        for (const write of pending) {
          const held = HashMap.get(current.cursors, write.peer)
          if (Option.isNone(held)) continue
          if (advanced.has(write.peer)) {
            if (rules.compare(held.value, write) === "equal")
              changes.push([write.peer, { ...held.value, dirty: false }])
            continue
          }
          const row = storedByPeer.get(write.peer)
          if (row === undefined) continue
          if (rules.compare(row, write) !== "equal")
            stale.push({ peer: write.peer, position: write.position, stored: row.position })
          // The database is at or past memory (or, for a map, not behind it): adopt it.
          const comparison = rules.compare(held.value, row)
          if (comparison === "before" || comparison === "equal" || comparison === "incomparable") {
            changes.push([write.peer, { position: row.position, key: row.key, dirty: false }])
          }
        }
        const next = putAll(current, changes)
        const counters = {
          ...current.counters,
          flushes: current.counters.flushes + 1,
          rowsFlushed: current.counters.rowsFlushed + advanced.size,
          staleFlushes: current.counters.staleFlushes + stale.length,
          lastFlushMillis: elapsed
        }
        return [undefined, { ...next, counters }]
      })
      yield* Metric.increment(env.metrics.committedFlushes)
      yield* Metric.incrementBy(env.metrics.rowsFlushed, advanced.size)
      if (stale.length > 0) yield* Metric.incrementBy(env.metrics.staleFlushes, stale.length)
      return { flushed: pending.length, persisted: advanced.size, stale }
    })
  )

/** Persists every dirty cursor in one transaction, serialized with the other writes of the store. */
export const flush = (env: Env): Effect.Effect<FlushResult, FlushFailed> =>
  env.writer.withPermits(1)(flushDirty(env))
