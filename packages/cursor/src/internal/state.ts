/**
 * The store's memory: the position held per peer (dirty until a flush persists it), counters, and
 * the one place that changes them (`transition`), moving the dirty gauge by the change.
 *
 * The maps are mutable and changed in place: a transition runs to its end in one synchronous step
 * of its fiber, so nobody sees a change half made. A `State` read outside a transition is a view
 * of the live memory, valid until its reader yields (every reader uses it at once).
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
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
  readonly cursors: ReadonlyMap<Peer.Peer, Entry>
  /** The peers whose entry is dirty (a flush reads these, not every cursor held); its size is the dirty count. */
  readonly pending: ReadonlySet<Peer.Peer>
  /** Set when the final flush begins: later `set`s are refused instead of lost. */
  readonly closed: boolean
  readonly counters: Counters
}

/** The memory inside a transition: read it, and change it in place. */
export interface Draft extends State {
  /** `peer` holds `entry` (or nothing) from now on; the dirty set follows. */
  readonly put: (peer: Peer.Peer, entry: Entry | undefined) => void
  /** Refuses every later `set`. */
  readonly close: () => void
  /** Updates the counters. */
  readonly count: (update: (counters: Counters) => Counters) => void
}

/** The memory of one store and how to change it. */
export interface Memory {
  /** The memory as it is now: a view valid until the reader yields. */
  readonly current: Effect.Effect<State>
  /** Applies `change` atomically (it must not throw) and moves the dirty gauge by what it changed. */
  readonly transition: <A>(change: (draft: Draft) => A) => Effect.Effect<A>
  /** Updates the counters. */
  readonly count: (update: (counters: Counters) => Counters) => Effect.Effect<void>
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

/** A fresh, empty memory whose dirty count is reported to `dirtyGauge`. */
export const make = (dirtyGauge: Metric.Metric.Gauge<number>): Effect.Effect<Memory> =>
  Effect.sync(() => {
    const cursors = new Map<Peer.Peer, Entry>()
    const pending = new Set<Peer.Peer>()
    let closed = false
    let counters = emptyCounters
    const draft: Draft = {
      cursors,
      pending,
      get closed() {
        return closed
      },
      get counters() {
        return counters
      },
      put: (peer, entry) => {
        if (entry === undefined) cursors.delete(peer)
        else cursors.set(peer, entry)
        if (entry?.dirty === true) pending.add(peer)
        else pending.delete(peer)
      },
      close: () => {
        closed = true
      },
      count: (update) => {
        counters = update(counters)
      }
    }
    return {
      current: Effect.succeed(draft),
      transition: <A>(change: (draft: Draft) => A) =>
        Effect.suspend(() => {
          const before = pending.size
          const result = change(draft)
          const delta = pending.size - before
          return delta === 0
            ? Effect.succeed(result)
            : Effect.as(Metric.incrementBy(dirtyGauge, delta), result)
        }),
      count: (update) =>
        Effect.sync(() => {
          counters = update(counters)
        })
    }
  })
