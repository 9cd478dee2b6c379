import { describe, expect, it } from "@effect/vitest"
import { Allocator, Port, Schemas } from "@keel/reservation"
import { Effect, Either, FastCheck as fc } from "effect"
import { isWithin, related } from "../src/internal/paths.js"

const asPort = (value: number) => Port.Port.make(value)

/** A small world: a range, the ports others hold, exclusions and occupied ports around it. */
const world = fc
  .record({
    min: fc.integer({ min: 1, max: 65_000 }),
    size: fc.integer({ min: 1, max: 40 })
  })
  .chain(({ min, size }) => {
    const max = Math.min(65_535, min + size - 1)
    const near = fc.integer({ min: Math.max(1, min - 3), max: Math.min(65_535, max + 3) })
    return fc.record({
      range: fc.constant(Port.PortRange.make({ min: asPort(min), max: asPort(max) })),
      taken: fc.uniqueArray(near, { maxLength: size }),
      exclude: fc.array(
        fc.tuple(near, fc.integer({ min: 0, max: 3 })).map(([start, length]) => {
          const end = Math.min(65_535, start + length)
          return Port.PortRange.make({ min: asPort(start), max: asPort(end) })
        }),
        { maxLength: 3 }
      ),
      occupied: fc.uniqueArray(near, { maxLength: size }),
      preferred: fc.option(near, { nil: undefined })
    })
  })

type World = typeof world extends fc.Arbitrary<infer A> ? A : never

/** Runs a plan against a world whose occupancy answers from its `occupied` list, counting questions. */
const runPlan = (
  w: World,
  wants: ReadonlyArray<Allocator.Want>,
  options: { force?: boolean; base?: number } = {}
) => {
  const asked: Array<number> = []
  const outcome = Effect.runSync(
    Effect.either(
      Allocator.plan(
        {
          range: w.range,
          exclude: w.exclude,
          taken: new Set(w.taken),
          wants,
          force: options.force,
          base: options.base
        },
        (port) =>
          Effect.sync(() => {
            asked.push(port)
            return w.occupied.includes(port)
          })
      )
    )
  )
  return { outcome, asked }
}

/** The model: ports of the range nobody holds, not excluded, not occupied, ascending. */
const freePorts = (w: World, alsoUsed: ReadonlyArray<number> = []): Array<number> => {
  const out: Array<number> = []
  for (let port = w.range.min; port <= w.range.max; port++) {
    if (w.taken.includes(port) || alsoUsed.includes(port) || w.occupied.includes(port)) continue
    if (Allocator.isExcluded(port, w.exclude)) continue
    out.push(port)
  }
  return out
}

const isFree = (w: World, port: number) =>
  !w.taken.includes(port) && !w.occupied.includes(port) && !Allocator.isExcluded(port, w.exclude)

describe("Allocator", () => {
  it.prop("one service gets the lowest free port, or Exhausted when there is none", [world], ([w]) => {
    const { outcome, asked } = runPlan(w, [{ key: "s" }])
    const expected = freePorts(w)[0]
    if (expected === undefined) {
      expect(Either.isLeft(outcome) && outcome.left._tag).toBe("Exhausted")
    } else {
      expect(Either.getOrThrow(outcome).get("s")).toBe(expected)
    }
    expect(new Set(asked).size).toBe(asked.length)
    for (const port of asked) expect(isFree(w, port) || w.occupied.includes(port)).toBe(true)
  })

  it.prop(
    "a preferred port is used exactly when it is free; otherwise the lowest free port",
    [world],
    ([w]) => {
      const { outcome } = runPlan(w, [
        { key: "s", preferred: w.preferred === undefined ? undefined : asPort(w.preferred) }
      ])
      const expected = w.preferred !== undefined && isFree(w, w.preferred) ? w.preferred : freePorts(w)[0]
      if (expected === undefined) expect(Either.isLeft(outcome)).toBe(true)
      else expect(Either.getOrThrow(outcome).get("s")).toBe(expected)
    }
  )

  it.prop(
    "never hands out a taken, excluded or occupied port without force",
    [world, fc.integer({ min: 1, max: 6 })],
    ([w, count]) => {
      const wants = Array.from({ length: count }, (_, index) => ({ key: `s${index}` }))
      const { outcome } = runPlan(w, wants)
      const free = freePorts(w)
      if (free.length < count) {
        expect(Either.isLeft(outcome) && outcome.left).toMatchObject({
          _tag: "Exhausted",
          key: `s${free.length}`
        })
        return
      }
      const assigned = Either.getOrThrow(outcome)
      expect(wants.map((want) => assigned.get(want.key))).toEqual(free.slice(0, count))
      for (const port of assigned.values()) expect(isFree(w, port)).toBe(true)
    }
  )

  it.prop(
    "force takes a preferred port unless someone holds it",
    [world, fc.integer({ min: 1, max: 65_535 })],
    ([w, preferred]) => {
      const { outcome, asked } = runPlan(w, [{ key: "s", preferred: asPort(preferred) }], { force: true })
      if (w.taken.includes(preferred)) {
        expect(Either.isLeft(outcome) && outcome.left).toMatchObject({
          _tag: "PreferredTaken",
          port: preferred
        })
      } else {
        expect(Either.getOrThrow(outcome).get("s")).toBe(preferred)
        expect(asked).toEqual([])
      }
    }
  )

  it.prop(
    "offsets are placed as one pattern at the lowest base where every port is free",
    [world, fc.uniqueArray(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 3 })],
    ([w, offsets]) => {
      const wants = offsets.map((offset, index) => ({ key: `s${index}`, offset }))
      const { outcome } = runPlan(w, wants)
      let expectedBase: number | undefined
      for (let base = w.range.min; base <= w.range.max && expectedBase === undefined; base++) {
        const ports = offsets.map((offset) => base + offset)
        if (ports.every((port) => port <= w.range.max && isFree(w, port))) expectedBase = base
      }
      if (expectedBase === undefined) {
        expect(Either.isLeft(outcome) && outcome.left._tag).toBe("Exhausted")
        return
      }
      const assigned = Either.getOrThrow(outcome)
      const base = expectedBase
      expect(wants.map((want) => assigned.get(want.key))).toEqual(offsets.map((offset) => base + offset))
    }
  )

  it.prop("a group's ports are distinct and none is taken, excluded or occupied", [world], ([w]) => {
    const wants: ReadonlyArray<Allocator.Want> = [
      { key: "a", preferred: w.preferred === undefined ? undefined : asPort(w.preferred) },
      { key: "b", offset: 0 },
      { key: "c", offset: 2 },
      { key: "d" }
    ]
    const { outcome } = runPlan(w, wants)
    if (Either.isLeft(outcome)) {
      expect(outcome.left._tag).toBe("Exhausted")
      return
    }
    const ports = [...outcome.right.values()]
    expect(outcome.right.size).toBe(wants.length)
    expect(new Set(ports).size).toBe(ports.length)
    for (const port of ports) expect(isFree(w, port)).toBe(true)
    expect((outcome.right.get("c") ?? 0) - (outcome.right.get("b") ?? 0)).toBe(2)
  })
})

describe("Port and tag parsing", () => {
  it.prop(
    "a range text parses when its ends are ports in order, and names the problem otherwise",
    [fc.integer({ min: -5, max: 70_000 }), fc.integer({ min: -5, max: 70_000 })],
    ([min, max]) => {
      const parsed = Effect.runSync(Effect.either(Port.parseRange(`${min}-${max}`, "range")))
      const valid = (n: number) => n >= 1 && n <= 65_535
      if (min < 0 || max < 0) expect(Either.isLeft(parsed) && parsed.left._tag).toBe("InvalidPort")
      else if (!valid(min) || !valid(max))
        expect(Either.isLeft(parsed) && parsed.left._tag).toBe("InvalidPort")
      else if (min > max)
        expect(Either.isLeft(parsed) && parsed.left).toMatchObject({ _tag: "InvalidRange", min, max })
      else expect(Either.getOrThrow(parsed)).toEqual({ min, max })
    }
  )

  it.prop(
    "a tag with any control character is rejected; a printable one is trimmed and kept",
    [fc.string({ minLength: 1, maxLength: 40 }), fc.integer({ min: 0, max: 0x9f })],
    ([text, code]) => {
      const control = code <= 0x1f || (code >= 0x7f && code <= 0x9f) ? String.fromCharCode(code) : "\u0000"
      const rejected = Effect.runSync(Effect.either(Schemas.validateTag(`${text}${control}x`, "tag")))
      expect(Either.isLeft(rejected) && rejected.left._tag).toBe("InvalidTag")
      const printable = text.replace(/[\p{Cc}\u2028\u2029]/gu, "")
      const kept = Effect.runSync(Effect.either(Schemas.validateTag(`  ${printable}  `, "tag")))
      if (printable.trim() === "") expect(Either.isLeft(kept)).toBe(true)
      else expect(Either.getOrThrow(kept)).toBe(printable.trim())
    }
  )
})

describe("Path relationship", () => {
  const segment = fc.stringMatching(/^[a-z0-9._-]{1,8}$/)
  const absolute = fc.array(segment, { minLength: 1, maxLength: 4 }).map((parts) => `/${parts.join("/")}`)

  it.prop(
    "a path is related to itself, its ancestors and its descendants, symmetrically",
    [absolute, segment],
    ([path, child]) => {
      expect(related(path, path, "/")).toBe(true)
      expect(related(path, `${path}/${child}`, "/")).toBe(true)
      expect(related(`${path}/${child}`, path, "/")).toBe(true)
      expect(related("/", path, "/")).toBe(true)
    }
  )

  it.prop("sharing a name prefix is not being related", [absolute, segment, segment], ([path, a, b]) => {
    fc.pre(a !== b)
    expect(isWithin(`${path}/${a}`, `${path}/${a}${b}`, "/")).toBe(false)
    expect(related(`${path}/${a}`, `${path}/${b}`, "/")).toBe(false)
  })
})
