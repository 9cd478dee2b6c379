/**
 * A lease's budget under its queue's limits, the same for every store: how many it may take, and
 * the rate window it spends (see `sqlLimits.ts` and the memory store).
 */

/** How many a lease may take under the queue's limits, and what it spends of its rate window. */
export interface Budget {
  readonly qty: number
  /**
   * Set when this lessee's clock is behind the window another lessee already counts in (clocks of
   * processes differ, and a lease's time is taken before it waits for the lock): it takes nothing
   * until its clock reaches that window.
   */
  readonly behindUntil?: number | undefined
  /** The rate window being spent (absent: no rate limit). */
  readonly window?:
    | {
        readonly start: number
        readonly intervalMs: number
        readonly used: number
        readonly limit: number
      }
    | undefined
}

/** When the rate window of `budget` is spent after `leased` more leases: when the next one opens. */
export const throttledUntil = (budget: Budget, leased: number): number | undefined =>
  budget.behindUntil ??
  (budget.window !== undefined && budget.window.used + leased >= budget.window.limit
    ? budget.window.start + budget.window.intervalMs
    : undefined)

/**
 * The budget of a lease at `now` under a rate limit of `limit` per `intervalMs`, given the window
 * the queue counts in (`current`, absent if none yet) and `wanted` (already capped by other limits).
 */
export const rateBudget = (
  wanted: number,
  now: number,
  limit: number,
  intervalMs: number,
  current: { readonly start: number; readonly count: number } | undefined
): Budget => {
  const start = Math.floor(now / intervalMs) * intervalMs
  if (current !== undefined && current.start > start) return { qty: 0, behindUntil: current.start }
  const used = current !== undefined && current.start === start ? current.count : 0
  return { qty: Math.max(0, Math.min(wanted, limit - used)), window: { start, intervalMs, used, limit } }
}
