/**
 * When a schedule fires: the ticks of a cron expression (seconds optional, in a time zone) or of a
 * fixed interval (counted from the schedule's creation), as epoch milliseconds. Pure functions;
 * `Cron` is Effect's parser and stepper.
 */
import * as Cron from "effect/Cron"
import * as Either from "effect/Either"

/** A schedule's clock: a cron expression in a time zone, or an interval from an anchor. */
export type Clock =
  | { readonly _tag: "Cron"; readonly cron: Cron.Cron }
  | { readonly _tag: "Every"; readonly everyMs: number; readonly anchor: number }

/** The most ticks one firing enqueues for one schedule (a backfill beyond it keeps the latest). */
export const maxTicksPerFiring = 1000

/** Parses a cron expression (5 fields, or 6 with seconds first) in `timeZone` (IANA; UTC if absent). */
export const parseCron = (
  expression: string,
  timeZone: string | undefined
): Either.Either<Cron.Cron, string> =>
  Either.mapLeft(Cron.parse(expression, timeZone ?? "UTC"), (error) => error.message)

/** The first tick strictly after `at`; undefined if there is none (a cron that never matches). */
export const nextAfter = (clock: Clock, at: number): number | undefined => {
  if (clock._tag === "Every") {
    if (at < clock.anchor) return clock.anchor
    return clock.anchor + (Math.floor((at - clock.anchor) / clock.everyMs) + 1) * clock.everyMs
  }
  try {
    // Cron.next steps from the next whole second after `at`: strictly after.
    return Cron.next(clock.cron, new Date(at)).getTime()
  } catch {
    return undefined
  }
}

/** The ticks in `[from, to]` (both epoch ms), oldest first, at most `limit` of the latest. */
export const between = (
  clock: Clock,
  from: number,
  to: number,
  limit = maxTicksPerFiring
): ReadonlyArray<number> => {
  if (to < from) return []
  const latest = latestAtOrBefore(clock, to)
  if (latest === undefined || latest < from) return []
  const ticks = [latest]
  let current = latest
  while (ticks.length < limit) {
    const previous = latestAtOrBefore(clock, current - 1)
    if (previous === undefined || previous < from) break
    ticks.push(previous)
    current = previous
  }
  return ticks.reverse()
}

/** The latest tick at or before `at`; undefined if there is none. */
export const latestAtOrBefore = (clock: Clock, at: number): number | undefined => {
  if (clock._tag === "Every") {
    if (at < clock.anchor) return undefined
    return clock.anchor + Math.floor((at - clock.anchor) / clock.everyMs) * clock.everyMs
  }
  try {
    // Cron.prev steps from the whole second before its start: start one second later, then drop a
    // tick that is still after `at` (only possible within the same second).
    const tick = Cron.prev(clock.cron, new Date(at + 1000)).getTime()
    return tick <= at ? tick : Cron.prev(clock.cron, new Date(tick)).getTime()
  } catch {
    return undefined
  }
}
