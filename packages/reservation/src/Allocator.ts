/**
 * The allocation plan: which ports a set of services of one path gets, given the ports other
 * reservations hold. Pure except for the occupancy probe it is handed, so it can be checked by
 * property tests; the service runs it inside the allocation transaction, between reading the
 * taken ports and writing its choice.
 *
 * The rules, in order:
 * 1. A service's preferred port is honoured when it is not taken, not excluded and not occupied
 *    (with `force`: when it is not taken — exclusions and occupancy are ignored).
 * 2. Services with an offset are placed together: at the lowest base (trying `base` first) where
 *    `base + offset` is free for each of them and inside the range.
 * 3. Every other service gets the lowest free port of the range, in request order.
 * Nothing is assigned unless every service is: a plan either places all or fails.
 */
import { Data, Effect } from "effect"
import { contains, inRange, type Port, type PortRange, ports } from "./Port.js"

/** One service to place. */
export interface Want {
  /** Identifies the service in the result (its tag). */
  readonly key: string
  readonly preferred?: Port | undefined
  readonly offset?: number | undefined
}

/** What the plan starts from. */
export interface Input {
  readonly range: PortRange
  readonly exclude: ReadonlyArray<PortRange>
  /** Ports held by other (live) reservations: never assigned. */
  readonly taken: ReadonlySet<number>
  readonly wants: ReadonlyArray<Want>
  /** Where the offset pattern is tried first. */
  readonly base?: number | undefined
  /** Preferred ports are taken even when excluded or occupied (never when taken). */
  readonly force?: boolean | undefined
}

/** No port (or no offset pattern) is free for `key`. */
export class Exhausted extends Data.TaggedError("Exhausted")<{ readonly key: string }> {}

/** `force` insisted on a preferred port another reservation holds. */
export class PreferredTaken extends Data.TaggedError("PreferredTaken")<{
  readonly key: string
  readonly port: Port
}> {}

/** True when an exclusion covers `port`. */
export const isExcluded = (port: number, exclude: ReadonlyArray<PortRange>): boolean =>
  exclude.some((excluded) => contains(excluded, port))

/**
 * Places every want, or fails with the first one that cannot be placed. `isOccupied` is asked at
 * most once per port, and only about ports that are otherwise free, lowest first.
 */
export const plan = <E, R>(
  input: Input,
  isOccupied: (port: Port) => Effect.Effect<boolean, E, R>
): Effect.Effect<ReadonlyMap<string, Port>, Exhausted | PreferredTaken | E, R> =>
  Effect.gen(function* () {
    const assigned = new Map<string, Port>()
    const used = new Set<number>(input.taken)
    const probed = new Map<number, boolean>()
    const occupied = (port: Port) =>
      probed.has(port)
        ? Effect.succeed(probed.get(port) === true)
        : Effect.tap(isOccupied(port), (answer) => Effect.sync(() => probed.set(port, answer)))
    const available = (port: number) => !used.has(port) && !isExcluded(port, input.exclude)
    const assign = (key: string, port: Port) => {
      assigned.set(key, port)
      used.add(port)
    }

    for (const want of input.wants) {
      if (want.preferred === undefined) continue
      const port = want.preferred
      if (input.force === true) {
        if (used.has(port)) return yield* new PreferredTaken({ key: want.key, port })
        assign(want.key, port)
      } else if (available(port) && !(yield* occupied(port))) {
        assign(want.key, port)
      }
    }

    const pattern = input.wants.filter((want) => !assigned.has(want.key) && want.offset !== undefined)
    const first = pattern[0]
    if (first !== undefined) {
      const offsets = pattern.map((want) => want.offset ?? 0)
      const span = Math.max(...offsets)
      const last = input.range.max - span
      const bases: Array<number> = []
      if (input.base !== undefined) bases.push(input.base)
      for (let base = input.range.min; base <= last; base++) if (base !== input.base) bases.push(base)
      let placed = false
      for (const base of bases) {
        const candidates = offsets.flatMap((offset) => {
          const port = inRange(input.range, base + offset)
          return port !== undefined && available(port) ? [port] : []
        })
        if (candidates.length !== offsets.length) continue
        let free = true
        for (const port of candidates) {
          if (yield* occupied(port)) {
            free = false
            break
          }
        }
        if (!free) continue
        pattern.forEach((want, index) => {
          const port = candidates[index]
          if (port !== undefined) assign(want.key, port)
        })
        placed = true
        break
      }
      if (!placed) return yield* new Exhausted({ key: first.key })
    }

    for (const want of input.wants) {
      if (assigned.has(want.key)) continue
      let found: Port | undefined
      for (const port of ports(input.range)) {
        if (available(port) && !(yield* occupied(port))) {
          found = port
          break
        }
      }
      if (found === undefined) return yield* new Exhausted({ key: want.key })
      assign(want.key, found)
    }
    return assigned
  })
