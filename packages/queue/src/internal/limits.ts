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

/** A queue's limits as a lease sees them under the write lock. */
export interface LimitState {
  /** At most this many leased at once (null: no limit). */
  readonly concurrencyLimit: number | null
  /** Messages leased now (lease not expired); read only when there is a concurrency limit. */
  readonly inFlight: number
  /** At most `rateLimit` leases per `rateIntervalMs` (null: no limit). */
  readonly rateLimit: number | null
  readonly rateIntervalMs: number | null
  /** The rate window the queue counts in (absent if none yet). */
  readonly window: { readonly start: number; readonly count: number } | undefined
}

/** How many of `wanted` a lease at `now` may take under `limits`, and the rate window it spends. */
export const budgetOf = (wanted: number, now: number, limits: LimitState): Budget => {
  const qty =
    limits.concurrencyLimit === null ? wanted : Math.min(wanted, limits.concurrencyLimit - limits.inFlight)
  const { rateLimit: limit, rateIntervalMs: intervalMs, window: current } = limits
  if (limit === null || intervalMs === null) return { qty: Math.max(0, qty) }
  const start = Math.floor(now / intervalMs) * intervalMs
  if (current !== undefined && current.start > start) return { qty: 0, behindUntil: current.start }
  const used = current !== undefined && current.start === start ? current.count : 0
  return { qty: Math.max(0, Math.min(qty, limit - used)), window: { start, intervalMs, used, limit } }
}
