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
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
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

/** The ports a choice may not hand out besides the taken ones: inclusive spans. */
export interface Span {
  readonly min: number
  readonly max: number
}

/**
 * What the choice asks about the ports other reservations hold. Each answer is a generator so that
 * one implementation can answer from memory (`plan`) and another by running statements inside a
 * transaction's plan (the SQL store), with the rules in one place (`choose`).
 */
export interface Holders<Y> {
  /** True when another (live) reservation holds `port`. */
  readonly isTaken: (port: Port) => Generator<Y, boolean, unknown>
  /** Every port of `range` another (live) reservation holds. */
  readonly takenIn: (range: PortRange) => Generator<Y, ReadonlySet<number>, unknown>
  /** The lowest port of `range` nobody holds and no span of `avoid` covers. */
  readonly lowestFree: (
    range: PortRange,
    avoid: ReadonlyArray<Span>
  ) => Generator<Y, Port | undefined, unknown>
}

/** What the choice needs besides the holders. */
export interface Choice {
  readonly range: PortRange
  readonly exclude: ReadonlyArray<PortRange>
  readonly wants: ReadonlyArray<Want>
  readonly base?: number | undefined
  readonly force?: boolean | undefined
  /** False: occupancy is not checked (every port counts as unoccupied). */
  readonly checkOccupancy: boolean
  /** What earlier probes said: `true` occupied, `false` free; ports not in it are unknown. */
  readonly probed: ReadonlyMap<number, boolean>
}

/** How a choice ended. */
export type Chosen =
  | { readonly _tag: "Placed"; readonly assigned: ReadonlyMap<string, Port> }
  /** These ports must be probed first (they were assumed free); choose again with the answers. */
  | { readonly _tag: "Probe"; readonly ports: ReadonlyArray<Port> }
  | Exhausted
  | PreferredTaken

const within = (spans: ReadonlyArray<Span>, port: number): boolean =>
  spans.some((span) => port >= span.min && port <= span.max)

/**
 * The allocation rules (see the module comment) over `holders`, without waiting for a probe: a
 * port whose occupancy is unknown is assumed free and reported in `Probe`, so the caller probes
 * outside any transaction and chooses again. A choice ends `Placed`, `Exhausted` or
 * `PreferredTaken` only when every port it relied on has a known occupancy.
 */
export function* choose<Y>(input: Choice, holders: Holders<Y>): Generator<Y, Chosen, unknown> {
  const assigned = new Map<string, Port>()
  const used = new Set<number>()
  const unknown = new Set<Port>()
  const occupied = (port: Port): boolean => {
    if (!input.checkOccupancy) return false
    const known = input.probed.get(port)
    if (known === undefined) unknown.add(port)
    return known === true
  }
  const probeFirst = (ended: Exhausted | PreferredTaken): Chosen =>
    unknown.size > 0 ? { _tag: "Probe", ports: [...unknown] } : ended
  const assign = (key: string, port: Port) => {
    assigned.set(key, port)
    used.add(port)
  }

  for (const want of input.wants) {
    if (want.preferred === undefined) continue
    const port = want.preferred
    if (input.force === true) {
      if (used.has(port) || (yield* holders.isTaken(port))) {
        return probeFirst(new PreferredTaken({ key: want.key, port }))
      }
      assign(want.key, port)
    } else if (
      !used.has(port) &&
      !isExcluded(port, input.exclude) &&
      !(yield* holders.isTaken(port)) &&
      !occupied(port)
    ) {
      assign(want.key, port)
    }
  }

  const pattern = input.wants.filter((want) => !assigned.has(want.key) && want.offset !== undefined)
  const first = pattern[0]
  if (first !== undefined) {
    const taken = yield* holders.takenIn(input.range)
    const available = (port: number) =>
      !taken.has(port) && !used.has(port) && !isExcluded(port, input.exclude)
    const offsets = pattern.map((want) => want.offset ?? 0)
    const last = input.range.max - Math.max(...offsets)
    const bases: Array<number> = []
    if (input.base !== undefined) bases.push(input.base)
    for (let base = input.range.min; base <= last; base++) if (base !== input.base) bases.push(base)
    let placed = false
    for (const base of bases) {
      const candidates = offsets.flatMap((offset) => {
        const port = inRange(input.range, base + offset)
        return port !== undefined && available(port) ? [port] : []
      })
      if (candidates.length !== offsets.length || candidates.some(occupied)) continue
      pattern.forEach((want, index) => {
        const port = candidates[index]
        if (port !== undefined) assign(want.key, port)
      })
      placed = true
      break
    }
    if (!placed) return probeFirst(new Exhausted({ key: first.key }))
  }

  const knownOccupied: Array<Span> = []
  if (input.checkOccupancy) {
    for (const [port, answer] of input.probed) if (answer) knownOccupied.push({ min: port, max: port })
  }
  for (const want of input.wants) {
    if (assigned.has(want.key)) continue
    const avoid: Array<Span> = [
      ...input.exclude,
      ...knownOccupied,
      ...[...used].map((port) => ({ min: port, max: port }))
    ]
    const found = yield* holders.lowestFree(input.range, avoid)
    if (found === undefined) return probeFirst(new Exhausted({ key: want.key }))
    occupied(found)
    assign(want.key, found)
  }
  return unknown.size > 0 ? { _tag: "Probe", ports: [...unknown] } : { _tag: "Placed", assigned }
}

/** Holders answered from a set of taken ports, without yielding. */
export const holdersOf = (taken: ReadonlySet<number>): Holders<never> => ({
  // biome-ignore lint/correctness/useYield: answers at once
  *isTaken(port) {
    return taken.has(port)
  },
  // biome-ignore lint/correctness/useYield: answers at once
  *takenIn() {
    return taken
  },
  // biome-ignore lint/correctness/useYield: answers at once
  *lowestFree(range, avoid) {
    for (const port of ports(range)) if (!taken.has(port) && !within(avoid, port)) return port
    return undefined
  }
})

/** Runs a generator that never yields to its end. */
const complete = <A>(generator: Generator<never, A, unknown>): A => {
  const step = generator.next()
  if (step.done !== true) throw new Error("a choice over in-memory holders yielded")
  return step.value
}

/**
 * Places every want, or fails with the first one that cannot be placed. `isOccupied` is asked at
 * most once per port, and only about ports that are otherwise free, lowest first.
 */
export const plan = <E, R>(
  input: Input,
  isOccupied: (port: Port) => Effect.Effect<boolean, E, R>
): Effect.Effect<ReadonlyMap<string, Port>, Exhausted | PreferredTaken | E, R> =>
  Effect.gen(function* () {
    const probed = new Map<number, boolean>()
    const holders = holdersOf(input.taken)
    for (;;) {
      const chosen = complete(
        choose(
          {
            range: input.range,
            exclude: input.exclude,
            wants: input.wants,
            base: input.base,
            force: input.force,
            checkOccupancy: true,
            probed
          },
          holders
        )
      )
      switch (chosen._tag) {
        case "Placed":
          return chosen.assigned
        case "Probe":
          for (const port of chosen.ports) probed.set(port, yield* isOccupied(port))
          break
        default:
          return yield* chosen
      }
    }
  })
