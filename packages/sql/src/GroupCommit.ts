/**
 * Group commit: write transactions that callers start in the same turn of the event loop (sends
 * from many fibers, HTTP requests that arrived together, acknowledgements of many handlers) run as
 * ONE transaction, each plan in a savepoint of its own (`Transaction.groupOn`).
 *
 * - Each caller gets its own outcome: a plan that fails or aborts is rolled back to its savepoint
 *   and fails alone; the plans that succeeded share the COMMIT's outcome (committed, or
 *   `CommitRejected` / `CommitOutcomeUnknown` for all of them), exactly as if each had been its
 *   own `Transaction.plan` whose COMMIT failed that way.
 * - On SQLite the whole group — BEGIN IMMEDIATE, every plan, COMMIT — is one synchronous step of
 *   the driver; one COMMIT (one WAL append) is paid for the whole group instead of one per caller.
 * - A caller inside an open transaction is not grouped: its plan joins that transaction.
 * - A group is formed when the event loop turns (`setImmediate`): every caller whose plan was
 *   submitted before then, up to `maxMembers`, is in it. A caller that is interrupted while it
 *   waits may still have its plan committed (as with an interrupted COMMIT).
 * - Even on better-sqlite3, where BEGIN IMMEDIATE + COMMIT cost only ~1.2 µs in a tight loop (WAL,
 *   synchronous NORMAL), grouping pays under concurrency: measured on `keel serve` (SQLite, 32
 *   connections sending), one transaction per request gave ~2,600 req/s and grouped ~5,400 req/s
 *   (a lone transaction between requests runs on cold caches). A lone caller would pay one
 *   event-loop turn for nothing (~15% on a loop of sequential sends), so by default the committer
 *   adapts: after 8 groups of one in a row it runs plans at once, except a probe now and then,
 *   which waits for the turn again to notice callers coming together (a group of two or more
 *   switches grouping back on). The first probe comes after 31 plans run at once; each probe that
 *   finds its caller alone doubles the wait, up to 1,023 (a probe costs a lone caller the turn).
 *   `defer: "always" | "never"` fixes the choice.
 *
 * `batcher` is the same collection for work that is not a plan: items of one turn are handed to
 * one function that answers each (on PostgreSQL, many sends or acknowledgements as one statement).
 */

import type { Fiber, Scope } from "effect"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import type { Backend } from "./Backend.js"
import type * as Plan from "./Plan.js"
import * as Transaction from "./Transaction.js"

/** A group committer over one backend. */
export interface GroupCommit {
  /**
   * Runs `make` as a whole write transaction, in the next group of this committer (or in the
   * caller's open transaction). Outcomes and errors as `Transaction.plan`.
   */
  readonly submit: <A, E>(make: Plan.Make<A, E>) => Effect.Effect<A, E | Transaction.TransactionError>
}

/** Options of `make` and `batcher`. */
export interface Options {
  /** The most items one group takes; later ones form the next group. Default 256. */
  readonly maxMembers?: number | undefined
  /**
   * `"always"` wait for the event loop to turn and group; `"never"` run each plan (each item) at
   * once on its own; `"adaptive"` (the default) group while callers come together, and run at once
   * while they do not (see the module comment).
   */
  readonly defer?: "always" | "never" | "adaptive" | undefined
}

/**
 * Collects items until the event loop turns, then hands them to `flush` (in chunks of at most
 * `maxMembers`, each in a fiber of its own). Closing the scope flushes what is pending and waits
 * for the flushes in flight.
 */
const collector = <T>(
  flush: (items: ReadonlyArray<T>) => Effect.Effect<void>,
  options: Options
): Effect.Effect<{ readonly add: (item: T) => void; readonly idle: () => boolean }, never, Scope.Scope> =>
  Effect.gen(function* () {
    const maxMembers = Math.max(1, Math.floor(options.maxMembers ?? 256))
    const fork = Runtime.runFork(yield* Effect.runtime<never>())
    const running = new Set<Fiber.RuntimeFiber<void>>()
    let pending: Array<T> = []
    let scheduled: NodeJS.Immediate | undefined

    const run = () => {
      scheduled = undefined
      const items = pending
      pending = []
      for (let start = 0; start < items.length; start += maxMembers) {
        const fiber = fork(flush(items.length <= maxMembers ? items : items.slice(start, start + maxMembers)))
        running.add(fiber)
        fiber.addObserver(() => running.delete(fiber))
      }
    }

    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        if (scheduled !== undefined) {
          clearImmediate(scheduled)
          run()
        }
        return Effect.forEach([...running], (fiber) => fiber.await, { discard: true })
      })
    )

    return {
      add: (item: T) => {
        pending.push(item)
        scheduled ??= setImmediate(run)
      },
      idle: () => pending.length === 0
    }
  })

/** Groups of one in a row after which an adaptive committer runs plans at once. */
const lonelyGroups = 8
/**
 * Every how many calls a committer that runs plans at once lets one wait for the turn again (a
 * probe, to notice callers coming together): at first, and at most after probes that found the
 * caller alone, each of which doubles it.
 */
const probeFirst = 32
const probeMax = 1024

/**
 * The adaptive choice of `make` and `batcher`: `observe` is told the size of every group that
 * formed; `atOnce` says whether a caller arriving now runs at once instead of waiting for the turn
 * (never while items are pending: they are already a group in the making). Only a "yes" counts
 * towards the next probe: asking again after a "no" gets the same "no".
 */
const pacing = (options: Options) => {
  const mode = options.defer ?? "adaptive"
  let alone = 0
  let sinceProbe = 0
  let probeEvery = probeFirst
  return {
    observe: (size: number) => {
      if (size > 1) probeEvery = probeFirst
      else if (alone >= lonelyGroups) probeEvery = Math.min(probeEvery * 2, probeMax)
      alone = size === 1 ? alone + 1 : 0
      sinceProbe = 0
    },
    atOnce: (idle: boolean): boolean => {
      if (mode !== "adaptive") return mode === "never"
      if (alone < lonelyGroups || !idle || sinceProbe >= probeEvery - 1) return false
      sinceProbe++
      return true
    }
  }
}

/**
 * A group committer over `backend`, for the life of the scope. Closing the scope runs the plans
 * already submitted and waits for the groups in flight.
 */
export const make = (
  backend: Backend,
  options: Options = {}
): Effect.Effect<GroupCommit, never, Scope.Scope> =>
  Effect.suspend(() => {
    const group = Transaction.groupOn(backend)
    // Adaptive: the size of the groups that formed says whether callers come together.
    const pace = pacing(options)
    const observed = (members: ReadonlyArray<Transaction.GroupMember>) => {
      pace.observe(members.length)
      return group(members)
    }
    return Effect.map(collector(observed, options), ({ add, idle }) => ({
      submit: <A, E>(make: Plan.Make<A, E>): Effect.Effect<A, E | Transaction.TransactionError> =>
        Effect.contextWithEffect((context: Context.Context<never>) => {
          const active = Context.getOption(context, Transaction.Active)
          if ((Option.isSome(active) && active.value.backend === backend) || pace.atOnce(idle())) {
            return Transaction.planOn(backend)(make)
          }
          return Effect.async<A, E | Transaction.TransactionError>((resume) => {
            const member: Transaction.GroupMember<A, E> = { make, own: undefined, resume }
            add(member)
          })
        })
    }))
  })

/** What `batcher` returns: submit an item, or have it answered in the caller's synchronous step. */
export interface Batcher<I, A, E> {
  /** Answers `item`: grouped with the items of this turn, or at once (decided when the effect runs). */
  (item: I): Effect.Effect<A, E>
  /**
   * `item` answered by the batcher's `now` in the caller's synchronous step, when the batcher would
   * run it at once (it is not grouping) and `now` answers it: the effect to continue with (usually
   * an `Exit`: the work is done). `undefined` otherwise, and nothing ran: submit it.
   */
  readonly now: (item: I) => Effect.Effect<A, E> | undefined
}

/** Options of `batcher`. */
export interface BatcherOptions<I, A, E> extends Options {
  /**
   * Answers one item in the caller's synchronous step (a synchronous driver whose session is
   * free), or `undefined` when it cannot and nothing ran. Used whenever an item runs at once.
   */
  readonly now?: ((item: I) => Effect.Effect<A, E> | undefined) | undefined
}

/**
 * Items submitted in the same event-loop turn are answered together by `run`, which must return
 * one outcome per item, in order (a failure of `run` itself fails every item of the group).
 * `defer` as for `make`: by default a caller that keeps arriving alone is answered at once — by
 * `now` when given and able, else by `run` of its item alone, in its own fiber.
 */
export const batcher = <I, A, E>(
  run: (items: ReadonlyArray<I>) => Effect.Effect<ReadonlyArray<Exit.Exit<A, E>>, E>,
  options: BatcherOptions<I, A, E> = {}
): Effect.Effect<Batcher<I, A, E>, never, Scope.Scope> =>
  Effect.suspend(() => {
    const pace = pacing(options)
    const now = options.now
    /** The answer to the item at `index`; a batch that answered fewer items is a defect. */
    const answerAt = (exits: ReadonlyArray<Exit.Exit<A, E>>, index: number): Exit.Exit<A, E> =>
      exits[index] ?? Exit.die(new Error("a batch answered fewer items than it was given"))
    return Effect.map(
      collector<{ readonly item: I; readonly resume: (exit: Exit.Exit<A, E>) => void }>((entries) => {
        pace.observe(entries.length)
        return Effect.matchCause(run(entries.map((entry) => entry.item)), {
          onFailure: (cause) => {
            for (const entry of entries) entry.resume(Exit.failCause(cause))
          },
          onSuccess: (exits) => {
            entries.forEach((entry, index) => {
              entry.resume(answerAt(exits, index))
            })
          }
        })
      }, options),
      ({ add, idle }): Batcher<I, A, E> =>
        Object.assign(
          (item: I) =>
            // Decided when the effect runs, not when it is built (a caller may build many first).
            Effect.suspend(() =>
              pace.atOnce(idle())
                ? (now?.(item) ?? Effect.flatMap(run([item]), (exits) => answerAt(exits, 0)))
                : Effect.async<A, E>((resume) => add({ item, resume }))
            ),
          {
            now: (item: I) => (now !== undefined && pace.atOnce(idle()) ? now(item) : undefined)
          }
        )
    )
  })
