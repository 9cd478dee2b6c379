/**
 * The store's memory: the position held per peer (dirty until a flush persists it), counters, and
 * the one place that changes them atomically (`transition`), moving the dirty gauge by the change.
 */
import { Effect, HashMap, HashSet, Metric, Option, Ref } from "effect"
import type * as Peer from "../Peer.js"
import type * as PositionKind from "../PositionKind.js"

/** A position held in memory, with its sort key and whether it awaits a flush. */
export interface Entry extends PositionKind.Keyed {
  readonly dirty: boolean
}

/** Counters of one store instance. */
export interface Counters {
  readonly flushes: number
  readonly failedFlushes: number
  readonly rowsFlushed: number
  readonly retries: number
  readonly staleSets: number
  readonly staleFlushes: number
  readonly lastFlushMillis: number | null
}

/** Everything the store holds in memory. */
export interface State {
  readonly cursors: HashMap.HashMap<Peer.Peer, Entry>
  /** How many entries are dirty. */
  readonly dirty: number
  /** The peers whose entry is dirty (a flush reads these, not every cursor held). */
  readonly pending: HashSet.HashSet<Peer.Peer>
  /** Set when the final flush begins: later `set`s are refused instead of lost. */
  readonly closed: boolean
  readonly counters: Counters
}

const emptyCounters: Counters = {
  flushes: 0,
  failedFlushes: 0,
  rowsFlushed: 0,
  retries: 0,
  staleSets: 0,
  staleFlushes: 0,
  lastFlushMillis: null
}

/** An empty memory. */
export const empty: State = {
  cursors: HashMap.empty(),
  dirty: 0,
  pending: HashSet.empty(),
  closed: false,
  counters: emptyCounters
}

/** How `peer` moving from what `state` holds to `entry` changes the dirty count: -1, 0 or 1. */
const dirtyChange = (state: State, peer: Peer.Peer, entry: Entry | undefined): number => {
  const held = HashMap.get(state.cursors, peer)
  return (entry?.dirty === true ? 1 : 0) - (Option.isSome(held) && held.value.dirty ? 1 : 0)
}

/** `state` with `peer` holding `entry` (or nothing), the dirty count and set kept right. */
export const put = (state: State, peer: Peer.Peer, entry: Entry | undefined): State => {
  const change = dirtyChange(state, peer, entry)
  return {
    ...state,
    cursors:
      entry === undefined ? HashMap.remove(state.cursors, peer) : HashMap.set(state.cursors, peer, entry),
    dirty: state.dirty + change,
    pending:
      change === 0
        ? state.pending
        : change > 0
          ? HashSet.add(state.pending, peer)
          : HashSet.remove(state.pending, peer)
  }
}

/**
 * `state` with each peer of `changes` holding its entry (or nothing), as `put` one by one would
 * leave it, but changed in place in one batch (a flush of thousands of cursors makes one new map).
 * Each peer appears at most once in `changes`.
 */
export const putAll = (
  state: State,
  changes: ReadonlyArray<readonly [Peer.Peer, Entry | undefined]>
): State => {
  if (changes.length === 0) return state
  let dirty = state.dirty
  const pending = HashSet.mutate(state.pending, (pendingNow) => {
    for (const [peer, entry] of changes) {
      const change = dirtyChange(state, peer, entry)
      dirty += change
      if (change > 0) HashSet.add(pendingNow, peer)
      else if (change < 0) HashSet.remove(pendingNow, peer)
    }
  })
  const cursors = HashMap.mutate(state.cursors, (cursorsNow) => {
    for (const [peer, entry] of changes) {
      if (entry === undefined) HashMap.remove(cursorsNow, peer)
      else HashMap.set(cursorsNow, peer, entry)
    }
  })
  return { ...state, cursors, pending, dirty }
}

/** The memory of one store and how to change it. */
export interface Memory {
  readonly ref: Ref.Ref<State>
  /** Applies `change` atomically and moves the dirty gauge by what it changed. */
  readonly transition: <A>(change: (current: State) => readonly [A, State]) => Effect.Effect<A>
  /** Updates the counters. */
  readonly count: (update: (counters: Counters) => Counters) => Effect.Effect<void>
}

/** A fresh memory whose dirty count is reported to `dirtyGauge`. */
export const make = (dirtyGauge: Metric.Metric.Gauge<number>): Effect.Effect<Memory> =>
  Effect.map(Ref.make(empty), (ref) => ({
    ref,
    transition: <A>(change: (current: State) => readonly [A, State]) =>
      Effect.flatMap(
        Ref.modify(ref, (current): readonly [readonly [A, number], State] => {
          const [result, next] = change(current)
          return [[result, next.dirty - current.dirty], next]
        }),
        ([result, delta]) =>
          delta === 0 ? Effect.succeed(result) : Effect.as(Metric.incrementBy(dirtyGauge, delta), result)
      ),
    count: (update) => Ref.update(ref, (current) => ({ ...current, counters: update(current.counters) }))
  }))
