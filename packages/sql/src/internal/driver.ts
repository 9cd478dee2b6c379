/**
 * Plans on the synchronous driver (better-sqlite3): a whole transaction — BEGIN IMMEDIATE, the
 * plan's statements, COMMIT — as one synchronous step, and a group of plans as one transaction
 * with a savepoint each. The outcomes are those of `Transaction.immediate`: a failed BEGIN ran
 * nothing; a failed statement or an aborted plan is rolled back and is the error; a failed COMMIT
 * is followed by ROLLBACK and is `CommitRejected` when that proves the rollback (or the failure
 * itself does: `DbError.commitNeverApplied`), and `CommitOutcomeUnknown` when SQLite had already
 * ended the transaction itself.
 */
import type { SyncDriver } from "../Backend.js"
import { classify, commitNeverApplied, type DbError } from "../DbError.js"
import type { Each, Make, Plan, Run } from "../Plan.js"
import { CommitOutcomeUnknown, CommitRejected, type TransactionError } from "../TransactionError.js"

/** How a plan's statements ended (before the transaction ends). */
export type Stepped<A, E> =
  | { readonly _tag: "Done"; readonly value: A }
  | { readonly _tag: "Aborted"; readonly error: E }
  | { readonly _tag: "Failed"; readonly error: DbError }

/** How a whole transaction ended. */
export type Outcome<A, E> =
  | { readonly _tag: "Committed"; readonly value: A }
  | { readonly _tag: "Failed"; readonly error: E | TransactionError; readonly rollbackFailed: boolean }

/**
 * Runs a plan's statements on the driver; `begin` is called at the plan's `Plan.begin` (and fails
 * the plan with its error). A plan that throws is a bug: the exception propagates.
 */
export const drive = <A, E>(
  driver: SyncDriver,
  plan: Plan<A, E>,
  begin?: () => DbError | undefined
): Stepped<A, E> => {
  let input: unknown
  for (;;) {
    const next = plan.next(input)
    if (next.done === true) return { _tag: "Done", value: next.value }
    const instruction = next.value
    if (instruction._tag === "Abort") return { _tag: "Aborted", error: instruction.error }
    input = undefined
    if (instruction._tag === "Synchronous") {
      input = true
      continue
    }
    if (instruction._tag === "Begin") {
      const failed = begin?.()
      if (failed !== undefined) return { _tag: "Failed", error: failed }
      continue
    }
    // Compiling is the plan's own work (a failure is a bug, thrown); running is the database's.
    const run = instruction._tag === "Each" ? compileEach(instruction) : compileRun(instruction)
    try {
      input = run(driver)
    } catch (cause) {
      return { _tag: "Failed", error: classify(cause) }
    }
  }
}

/** A value standing for the item's value at `index` while the template is compiled. */
class Slot {
  constructor(readonly index: number) {}
}

/** A compiled instruction, ready to run on the driver. */
type Compiled = (driver: SyncDriver) => unknown

const compileRun = (run: Run): Compiled => {
  const [sql, params] = run.statement.compile()
  return (driver) => driver.run(sql, params)
}

/** A template compiled with slots: its SQL text and its parameters, slots standing for the item's values. */
interface CompiledTemplate {
  readonly sql: string
  readonly template: ReadonlyArray<unknown>
}

/**
 * Compiled templates by template function and arity. A template is a function of its values alone
 * (see `Plan.Each`), so a function hoisted by its caller compiles once, not once per plan run; an
 * inline function is a new key each run and only costs the entry, which goes with the function.
 */
const compiledTemplates = new WeakMap<Each["statement"], Map<number, CompiledTemplate>>()

const compileTemplate = (each: Each, arity: number): CompiledTemplate => {
  const byArity = compiledTemplates.get(each.statement)
  const cached = byArity?.get(arity)
  if (cached !== undefined) return cached
  const slots = Array.from({ length: arity }, (_, index) => new Slot(index))
  const [sql, params] = each.statement(...slots).compile()
  const bound = new Set<number>()
  for (const param of params) if (param instanceof Slot) bound.add(param.index)
  if (bound.size !== arity)
    throw new Error(`Plan.each: ${arity - bound.size} value(s) not bound as one parameter`)
  const compiled = { sql, template: params }
  if (byArity === undefined) compiledTemplates.set(each.statement, new Map([[arity, compiled]]))
  else byArity.set(arity, compiled)
  return compiled
}

/**
 * Compiles `each.statement` with a `Slot` for every value (once per template function and arity:
 * `compileTemplate`); the run executes the same SQL (one prepared statement) per item, each slot's
 * parameter bound to that item's value. A value the statement does not bind as exactly one
 * parameter is a bug of the plan: it throws here.
 */
const compileEach = (each: Each): Compiled => {
  const { sql, template } = compileTemplate(each, each.items[0]?.length ?? 0)
  return (driver) => {
    const results: Array<unknown> = []
    const values = template.slice()
    for (const item of each.items) {
      for (let i = 0; i < template.length; i++) {
        const param = template[i]
        values[i] = param instanceof Slot ? (item[param.index] ?? null) : param
      }
      results.push(each.count ? driver.count(sql, values) : driver.run(sql, values))
    }
    return results
  }
}

/**
 * ROLLBACK after a failure, tried twice. True when the session is then outside any transaction
 * (SQLite may already have ended it itself).
 */
export const rollback = (driver: SyncDriver): boolean => {
  for (let attempt = 0; attempt < 2 && driver.inTransaction(); attempt++) {
    try {
      driver.run("ROLLBACK", [])
    } catch {
      // Tried once more; a session left inside the transaction is reported by the caller.
    }
  }
  return !driver.inTransaction()
}

/** COMMIT; on failure ROLLBACK and the typed reason (undefined: committed). */
const commit = (driver: SyncDriver): CommitRejected | CommitOutcomeUnknown | undefined => {
  try {
    driver.run("COMMIT", [])
    return undefined
  } catch (cause) {
    const reason = classify(cause)
    const rolledBack = driver.inTransaction() ? rollback(driver) : commitNeverApplied(reason)
    return rolledBack ? new CommitRejected({ reason }) : new CommitOutcomeUnknown({ reason })
  }
}

const begin = (driver: SyncDriver): DbError | undefined => {
  try {
    driver.run("BEGIN IMMEDIATE", [])
    return undefined
  } catch (cause) {
    return classify(cause)
  }
}

/**
 * One plan as a whole write transaction, in one synchronous step. With `lazy`, BEGIN IMMEDIATE is
 * issued at the plan's `Plan.begin` instead of first, and a plan that ends before it began is done
 * without any transaction.
 */
export const transaction = <A, E>(driver: SyncDriver, make: Make<A, E>, lazy = false): Outcome<A, E> => {
  let open = false
  const start = (): DbError | undefined => {
    if (open) return undefined
    const busy = begin(driver)
    if (busy === undefined) open = true
    return busy
  }
  if (!lazy) {
    const busy = start()
    if (busy !== undefined) return { _tag: "Failed", error: busy, rollbackFailed: false }
  }
  let stepped: Stepped<A, E>
  try {
    stepped = drive(driver, make(), start)
  } catch (defect) {
    if (open) rollback(driver)
    throw defect
  }
  if (!open) {
    return stepped._tag === "Done"
      ? { _tag: "Committed", value: stepped.value }
      : { _tag: "Failed", error: stepped.error, rollbackFailed: false }
  }
  if (stepped._tag !== "Done")
    return { _tag: "Failed", error: stepped.error, rollbackFailed: !rollback(driver) }
  const ended = commit(driver)
  return ended === undefined
    ? { _tag: "Committed", value: stepped.value }
    : { _tag: "Failed", error: ended, rollbackFailed: false }
}

/** How the group drives and settles its members (one object for all of them: no closure per member). */
export interface Members<M> {
  /** Runs the member's plan and remembers how it ended. Throws what the plan throws. */
  readonly drive: (member: M, driver: SyncDriver) => Stepped<unknown, unknown>
  /**
   * Settles the caller once the transaction has ended: with its own failure if its plan failed,
   * else committed (`ended` undefined) or with the transaction's failure.
   */
  readonly settle: (member: M, ended: TransactionError | undefined) => void
  /** Settles the caller with a defect its plan threw (its savepoint was rolled back). */
  readonly die: (member: M, defect: unknown) => void
}

const savepoint = "keel_group"

/** Runs a statement of the group's own; the error, classified, when it fails. */
const statement = (driver: SyncDriver, sql: string): DbError | undefined => {
  try {
    driver.run(sql, [])
    return undefined
  } catch (cause) {
    return classify(cause)
  }
}

/**
 * The members' plans as one write transaction, in one synchronous step: BEGIN IMMEDIATE, each plan
 * in a savepoint of its own (a plan that fails or aborts is rolled back to it and fails alone),
 * then COMMIT, whose outcome every member that succeeded shares. If a failure ends the whole
 * transaction (SQLite rolls back by itself after some errors), every member that had succeeded is
 * told it was rolled back (`CommitRejected` with that error) and the rest are not run. Returns
 * false when the session could not be brought back outside a transaction.
 */
export const group = <M>(driver: SyncDriver, members: ReadonlyArray<M>, how: Members<M>): boolean => {
  const busy = begin(driver)
  if (busy !== undefined) {
    for (const member of members) how.settle(member, busy)
    return true
  }
  const ran: Array<M> = []
  let ended: DbError | undefined
  if (members.length === 1 && members[0] !== undefined) {
    // Alone: the transaction is its own; no savepoint needed.
    const [member] = members
    let step: Stepped<unknown, unknown>
    try {
      step = how.drive(member, driver)
    } catch (defect) {
      how.die(member, defect)
      return rollback(driver)
    }
    if (step._tag !== "Done") {
      const clean = rollback(driver)
      how.settle(member, undefined)
      return clean
    }
    const committed = commit(driver)
    how.settle(member, committed)
    return !driver.inTransaction()
  }
  for (const member of members) {
    if (ended !== undefined) {
      how.settle(member, new CommitRejected({ reason: ended }))
      continue
    }
    const opened = statement(driver, `SAVEPOINT ${savepoint}`)
    if (opened !== undefined) {
      how.settle(member, opened)
      if (!driver.inTransaction()) ended = opened
      continue
    }
    // A member whose plan threw is settled at once (a defect) and never again.
    let step: Stepped<unknown, unknown> | undefined
    try {
      step = how.drive(member, driver)
    } catch (defect) {
      how.die(member, defect)
    }
    if (!driver.inTransaction()) {
      // The plan's failure ended the whole transaction: everything before it was rolled back.
      ended =
        step?._tag === "Failed"
          ? step.error
          : classify(new Error("the transaction ended inside a plan that did not fail"))
      if (step !== undefined) ran.push(member)
      continue
    }
    if (step?._tag === "Done") {
      const released = statement(driver, `RELEASE ${savepoint}`)
      if (released === undefined) ran.push(member)
      else how.settle(member, released)
    } else {
      statement(driver, `ROLLBACK TO ${savepoint}`)
      statement(driver, `RELEASE ${savepoint}`)
      if (step !== undefined) ran.push(member)
    }
  }
  if (ended !== undefined || !driver.inTransaction()) {
    const reason = new CommitRejected({
      reason: ended ?? classify(new Error("the transaction ended before COMMIT"))
    })
    for (const member of ran) how.settle(member, reason)
    return rollback(driver)
  }
  const committed = commit(driver)
  for (const member of ran) how.settle(member, committed)
  return !driver.inTransaction()
}
