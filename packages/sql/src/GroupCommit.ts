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
 */
import { Effect, type Fiber, Option, Runtime, type Scope } from "effect"
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

/** Options of `make`. */
export interface Options {
  /** The most plans one transaction takes; later ones form the next group. Default 256. */
  readonly maxMembers?: number | undefined
}

/**
 * A group committer over `backend`, for the life of the scope. Closing the scope runs the plans
 * already submitted and waits for the groups in flight.
 */
export const make = (
  backend: Backend,
  options: Options = {}
): Effect.Effect<GroupCommit, never, Scope.Scope> =>
  Effect.gen(function* () {
    const maxMembers = Math.max(1, Math.floor(options.maxMembers ?? 256))
    const fork = Runtime.runFork(yield* Effect.runtime<never>())
    const group = Transaction.groupOn(backend)
    const running = new Set<Fiber.RuntimeFiber<void>>()
    let pending: Array<Transaction.GroupMember> = []
    let scheduled: NodeJS.Immediate | undefined

    const flush = () => {
      scheduled = undefined
      const members = pending
      pending = []
      for (let start = 0; start < members.length; start += maxMembers) {
        const fiber = fork(group(members.slice(start, start + maxMembers)))
        running.add(fiber)
        fiber.addObserver(() => running.delete(fiber))
      }
    }

    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        if (scheduled !== undefined) {
          clearImmediate(scheduled)
          flush()
        }
        return Effect.forEach([...running], (fiber) => fiber.await, { discard: true })
      })
    )

    const submit = <A, E>(make: Plan.Make<A, E>): Effect.Effect<A, E | Transaction.TransactionError> =>
      Effect.flatMap(Effect.serviceOption(Transaction.Active), (active) => {
        if (Option.isSome(active) && active.value.backend === backend)
          return Transaction.planOn(backend)(make)
        return Effect.async<A, E | Transaction.TransactionError>((resume) => {
          const member: Transaction.GroupMember<A, E> = { make, own: undefined, resume }
          pending.push(member)
          scheduled ??= setImmediate(flush)
        })
      })

    return { submit }
  })
