import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Either, FastCheck, Schema } from "effect"
import { Cursor, Peer, Position } from "../src/index.js"

const u64 = FastCheck.bigInt({ min: 0n, max: 2n ** 64n - 1n })

/** A canonical position and its exact numeric value (ms, seq), an offset counting as (n, 0). */
const position = FastCheck.oneof(
  FastCheck.tuple(u64, u64).map(([ms, seq]) => ({ text: `${ms}-${seq}`, ms, seq })),
  u64.map((offset) => ({ text: String(offset), ms: offset, seq: 0n }))
)

/** Positions that cluster near each other and near the 2^53 and 2^64 edges, where bugs hide. */
const edgy = FastCheck.oneof(
  FastCheck.constantFrom(
    0n,
    1n,
    9n,
    10n,
    2n ** 53n - 1n,
    2n ** 53n,
    2n ** 53n + 1n,
    2n ** 63n,
    2n ** 64n - 1n
  ),
  FastCheck.bigInt({ min: 0n, max: 20n })
)
const nearby = FastCheck.oneof(
  FastCheck.tuple(edgy, edgy).map(([ms, seq]) => ({ text: `${ms}-${seq}`, ms, seq })),
  edgy.map((offset) => ({ text: String(offset), ms: offset, seq: 0n }))
)

const numeric = (a: { ms: bigint; seq: bigint }, b: { ms: bigint; seq: bigint }): -1 | 0 | 1 =>
  a.ms < b.ms ? -1 : a.ms > b.ms ? 1 : a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0

const parsed = (text: string): Position.Position => {
  const result = Position.parse(text)
  if (Either.isLeft(result)) throw new Error(`expected ${text} to parse: ${result.left.message}`)
  return result.right
}

describe("Position", () => {
  it.prop(
    "every canonical stream id and offset up to 2^64 - 1 parses and round-trips unchanged",
    [position],
    ([p]) => {
      const result = parsed(p.text)
      expect(result).toBe(p.text)
      expect(Position.parts(result)).toEqual({ ms: p.ms, seq: p.seq })
      expect(Schema.is(Position.Position)(p.text)).toBe(true)
    }
  )

  it.prop(
    "positions are ordered as numbers (ms, then seq), never as strings",
    [FastCheck.oneof(position, nearby), FastCheck.oneof(position, nearby)],
    ([a, b]) => {
      const pa = parsed(a.text)
      const pb = parsed(b.text)
      expect(Position.Order(pa, pb)).toBe(numeric(a, b))
      expect(Position.isAfter(pa, pb)).toBe(numeric(a, b) === 1)
      expect(Position.sortKey(pa) < Position.sortKey(pb)).toBe(numeric(a, b) === -1)
      expect(Position.sortKey(pa)).toHaveLength(40)
      expect(Position.max(pa, pb)).toBe(numeric(a, b) === -1 ? pb : pa)
    },
    { fastCheck: { numRuns: 500 } }
  )

  it("string order would get these wrong; the position order does not", () => {
    const pairs: ReadonlyArray<readonly [string, string]> = [
      ["9-0", "10-0"],
      ["1-9", "1-10"],
      ["9", "10"],
      ["1700000000000-99", "1700000000000-100"],
      ["9007199254740992-0", "9007199254740993-0"],
      ["1-18446744073709551614", "1-18446744073709551615"]
    ]
    for (const [lower, higher] of pairs) {
      expect(Position.isAfter(parsed(higher), parsed(lower))).toBe(true)
      expect(Position.isAfter(parsed(lower), parsed(higher))).toBe(false)
    }
  })

  it("an offset n orders as the stream id n-0, before n-1", () => {
    expect(Position.Order(parsed("5"), parsed("5-0"))).toBe(0)
    expect(Position.isAfter(parsed("5-1"), parsed("5"))).toBe(true)
    expect(Position.Order(Position.zero, Position.streamStart)).toBe(0)
    expect(Position.form(parsed("5"))).toBe("offset")
    expect(Position.form(parsed("5-0"))).toBe("stream-id")
  })

  it("malformed positions are a typed InvalidPosition naming the field and the reason", () => {
    const malformed = [
      "",
      " 1",
      "1 ",
      "-1",
      "+1",
      "01",
      "1-01",
      "1.5",
      "1e3",
      "0x10",
      "1-",
      "-",
      "1-2-3",
      "$",
      ">",
      "*",
      "18446744073709551616",
      "1-18446744073709551616",
      "99999999999999999999-0",
      "1".repeat(100),
      "１２３"
    ]
    for (const text of malformed) {
      const result = Position.parse(text, "position")
      expect(Either.isLeft(result), text).toBe(true)
      if (Either.isLeft(result)) {
        expect(result.left._tag).toBe("InvalidPosition")
        expect(result.left.field).toBe("position")
        expect(result.left.reason.length).toBeGreaterThan(0)
        expect(result.left.position.length).toBeLessThanOrEqual(101)
      }
      expect(Schema.is(Position.Position)(text)).toBe(false)
    }
  })

  it.prop(
    "arbitrary text either parses to itself or is rejected, never altered",
    [FastCheck.string()],
    ([text]) => {
      const result = Position.parse(text)
      if (Either.isRight(result)) expect(result.right).toBe(text)
    }
  )
})

describe("Peer", () => {
  it("accepts ordinary names and rejects empty, long, padded and control-character names", () => {
    for (const name of ["replica-1", "consumer group/α", "a", "x".repeat(256)]) {
      expect(Either.isRight(Peer.parse(name)), name).toBe(true)
    }
    for (const name of ["", " a", "a ", "a\nb", "a\u0000", "x".repeat(257)]) {
      const result = Peer.parse(name)
      expect(Either.isLeft(result), JSON.stringify(name)).toBe(true)
      if (Either.isLeft(result)) expect(result.left._tag).toBe("InvalidPeer")
    }
    expect(Either.isLeft(Peer.parseNamespace("n".repeat(129)))).toBe(true)
  })
})

describe("Cursor settings", () => {
  it.effect("defaults, validation and Config: a bad field is a typed InvalidConfig naming it", () =>
    Effect.gen(function* () {
      const defaults = yield* Cursor.settings()
      expect(defaults.namespace).toBe("default")
      expect(defaults.start).toBe("0")
      expect(Duration.toMillis(defaults.flushInterval)).toBe(1000)
      for (const [config, field] of [
        [{ flushInterval: 0 }, "flushInterval"],
        [{ flushInterval: Duration.hours(2) }, "flushInterval"],
        [{ flushInterval: Duration.infinity }, "flushInterval"],
        [{ namespace: "" }, "namespace"],
        [{ start: "-1" }, "start"]
      ] as const) {
        const error = yield* Effect.flip(Cursor.settings(config))
        expect(error._tag).toBe("InvalidConfig")
        expect(error.field).toBe(field)
      }
      const fromEnv = yield* Effect.withConfigProvider(
        Effect.flatMap(Cursor.config, Cursor.settings),
        ConfigProvider.fromMap(
          new Map([
            ["KEEL_CURSOR_NAMESPACE", "orders"],
            ["KEEL_CURSOR_FLUSH_INTERVAL", "500 millis"],
            ["KEEL_CURSOR_START", "0-0"]
          ])
        )
      )
      expect(fromEnv.namespace).toBe("orders")
      expect(fromEnv.start).toBe("0-0")
      expect(Duration.toMillis(fromEnv.flushInterval)).toBe(500)
    })
  )
})
