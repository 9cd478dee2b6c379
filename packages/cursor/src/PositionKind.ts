/**
 * The kinds of position a namespace may declare, and how each is parsed and ordered. A namespace
 * declares one kind when its first store starts; every later store of it must declare the same.
 *
 * - `stream` (the default): a Redis stream id `<ms>-<seq>` or an integer offset, mixed (`5` = `5-0`).
 * - `integer`: an offset only (Kafka), 0 … 2^64 − 1.
 * - `ms-seq`: a Redis stream id only.
 * - `lsn`: a PostgreSQL LSN `X/Y` as PostgreSQL prints it (upper-case hex, no leading zeros).
 * - `string`: printable ASCII compared byte by byte (a ULID, an ISO timestamp, a GTID text).
 * - `json-map`: a JSON object of non-negative integers (partition → offset), compared per key: it
 *   advances only when no key moves backwards; a map with one key ahead and one behind is stale.
 *
 * Every kind but `json-map` has a sort key whose byte order is the position order, so the database
 * refuses a stale write itself; a `json-map` is compared in the process inside the write transaction.
 */
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { echo, InvalidPosition } from "./CursorError.js"
import * as Position from "./Position.js"

/** The kinds a namespace can declare. */
export const Kind = Schema.Literal("stream", "integer", "ms-seq", "lsn", "string", "json-map")

/** A kind of position. */
export type Kind = typeof Kind.Type

/** Every kind, for help texts and CLI choices. */
export const kinds: ReadonlyArray<Kind> = Kind.literals

/** How two positions of one kind compare. `incomparable` only happens between `json-map`s. */
export type Comparison = "before" | "equal" | "after" | "incomparable"

/** What a distance between a position and the head counts, or null when the kind has none. */
export const LagUnit = Schema.NullOr(Schema.Literal("offsets", "milliseconds", "bytes"))

/** What a distance counts. */
export type LagUnit = typeof LagUnit.Type

/** How far a position is from the head: whether it is behind, and by how much (a decimal integer). */
export interface Distance {
  readonly behind: boolean
  /** `head − position` in `unit`, never negative; null when the kind has no distance (`string`). */
  readonly distance: string | null
  readonly unit: LagUnit
}

/** A position with its sort key, as the store holds it. */
export interface Keyed {
  readonly position: Position.Any
  readonly key: string
}

/** The rules of one kind. */
export interface Ordering {
  readonly kind: Kind
  /** The default start of a peer without a cursor: `0`, `0-0`, `0/0`, `{}`; `0` for `string` (configure one). */
  readonly zero: Position.Any
  /** `text` as a canonical position of this kind, or `InvalidPosition` naming `field`. */
  readonly parse: (text: string, field?: string) => Either.Either<Position.Any, InvalidPosition>
  /** True when the database compares sort keys (every kind but `json-map`). */
  readonly inDatabase: boolean
  /** The sort key stored beside the position (byte order = position order; empty for `json-map`). */
  readonly key: (position: Position.Any) => string
  /** How `a` compares with `b`. */
  readonly compare: (a: Keyed, b: Keyed) => Comparison
  /** How far `position` (none: no cursor) is behind `head`. */
  readonly distance: (position: Position.Any | undefined, head: Position.Any) => Distance
}

const invalid = (field: string, text: string, reason: string) =>
  Either.left(new InvalidPosition({ field, position: echo(text), reason }))

const byKey = (a: Keyed, b: Keyed): Comparison =>
  a.key < b.key ? "before" : a.key > b.key ? "after" : "equal"

const minus = (head: bigint, position: bigint): string => String(head > position ? head - position : 0n)

/** Brands text a parser has just checked (a check of its own would run twice per `set`). */
const accepted = (text: string): Position.Any => text as Position.Any

const streamDistance =
  (unit: "offsets" | "milliseconds") => (position: Position.Any | undefined, head: Position.Any) => {
    const h = Position.parts(head as Position.Position)
    const p = position === undefined ? { ms: 0n, seq: 0n } : Position.parts(position as Position.Position)
    const behind =
      h.ms > p.ms || (h.ms === p.ms && h.seq > p.seq) || (position === undefined && h.ms + h.seq > 0n)
    return { behind, distance: minus(h.ms, p.ms), unit }
  }

/** The offsets-or-stream-ids kind built on `Position.ts`, narrowed by `form` when given. */
const streamLike = (kind: "stream" | "integer" | "ms-seq"): Ordering => {
  const wanted: Position.Form | undefined =
    kind === "integer" ? "offset" : kind === "ms-seq" ? "stream-id" : undefined
  return {
    kind,
    zero: kind === "ms-seq" ? Position.streamStart : Position.zero,
    parse: (text, field = "position") => {
      const parsed = Position.parse(text, field)
      if (Either.isLeft(parsed) || wanted === undefined || Position.form(parsed.right) === wanted)
        return parsed
      return invalid(
        field,
        text,
        wanted === "offset"
          ? "this namespace's positions are integer offsets"
          : "this namespace's positions are stream ids <ms>-<seq>"
      )
    },
    inDatabase: true,
    key: (position) => Position.sortKey(position as Position.Position),
    compare: byKey,
    distance: (position, head) =>
      streamDistance(
        kind === "integer" || (kind === "stream" && Position.form(head as Position.Position) === "offset")
          ? "offsets"
          : "milliseconds"
      )(position, head)
  }
}

const lsnShape = /^(0|[1-9A-F][0-9A-F]{0,7})\/(0|[1-9A-F][0-9A-F]{0,7})$/

const lsnValue = (position: string): bigint => {
  const slash = position.indexOf("/")
  return (BigInt(`0x${position.slice(0, slash)}`) << 32n) + BigInt(`0x${position.slice(slash + 1)}`)
}

const lsn: Ordering = {
  kind: "lsn",
  zero: accepted("0/0"),
  parse: (text, field = "position") =>
    text.length <= 17 && lsnShape.test(text)
      ? Either.right(accepted(text))
      : invalid(
          field,
          text,
          "expected a PostgreSQL LSN X/Y: upper-case hex, 1-8 digits each, no leading zeros"
        ),
  inDatabase: true,
  key: (position) =>
    String(lsnValue(position)).padStart(Position.partDigits, "0") + "0".repeat(Position.partDigits),
  compare: byKey,
  distance: (position, head) => {
    const h = lsnValue(head)
    const p = position === undefined ? 0n : lsnValue(position)
    return { behind: h > p, distance: minus(h, p), unit: "bytes" }
  }
}

/** The longest `string` position. */
export const maxStringLength = 256

const printable = /^[\x20-\x7e]+$/

const lexicographic: Ordering = {
  kind: "string",
  zero: accepted("0"),
  parse: (text, field = "position") =>
    text.length === 0
      ? invalid(field, text, "it is empty")
      : text.length > maxStringLength
        ? invalid(field, text, `it is longer than ${maxStringLength} characters`)
        : printable.test(text)
          ? Either.right(accepted(text))
          : invalid(field, text, "expected printable ASCII (compared byte by byte)"),
  inDatabase: true,
  key: (position) => position,
  compare: byKey,
  distance: (position, head) => ({
    behind: position === undefined || head > position,
    distance: null,
    unit: null
  })
}

/** The most keys a `json-map` position may have. */
export const maxMapKeys = 1_000

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it rejects
const control = /[\u0000-\u001f\u007f]/

/** A JSON map's entries, checked: `undefined` with the reason when it is not one. */
const mapEntries = (text: string): ReadonlyArray<readonly [string, number]> | string => {
  if (text.length > Position.maxAnyLength) return `it is longer than ${Position.maxAnyLength} characters`
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return "expected a JSON object of non-negative integers"
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return "expected a JSON object of non-negative integers"
  const entries = Object.entries(value)
  if (entries.length > maxMapKeys) return `it has more than ${maxMapKeys} keys`
  const checked: Array<readonly [string, number]> = []
  for (const [key, offset] of entries) {
    if (key.length === 0 || key.length > 256 || control.test(key))
      return `key ${JSON.stringify(echo(key))} must be 1-256 characters without control characters`
    if (typeof offset !== "number" || !Number.isSafeInteger(offset) || offset < 0)
      return `the value of ${JSON.stringify(echo(key))} must be a non-negative integer up to 2^53 - 1`
    checked.push([key, offset])
  }
  return checked.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
}

const mapOf = (position: string): ReadonlyMap<string, number> => {
  const entries = mapEntries(position)
  return new Map(typeof entries === "string" ? [] : entries)
}

const jsonMap: Ordering = {
  kind: "json-map",
  zero: accepted("{}"),
  parse: (text, field = "position") => {
    const entries = mapEntries(text)
    if (typeof entries === "string") return invalid(field, text, entries)
    return Either.right(accepted(JSON.stringify(Object.fromEntries(entries))))
  },
  inDatabase: false,
  key: () => "",
  compare: (a, b) => {
    if (a.position === b.position) return "equal"
    const left = mapOf(a.position)
    const right = mapOf(b.position)
    let ahead = false
    let behind = false
    for (const key of new Set([...left.keys(), ...right.keys()])) {
      const l = left.get(key) ?? -1
      const r = right.get(key) ?? -1
      if (l > r) ahead = true
      else if (l < r) behind = true
    }
    return ahead && behind ? "incomparable" : ahead ? "after" : behind ? "before" : "equal"
  },
  distance: (position, head) => {
    const p = position === undefined ? new Map<string, number>() : mapOf(position)
    let total = 0n
    for (const [key, offset] of mapOf(head)) {
      const at = p.get(key)
      if (at === undefined || at < offset) total += BigInt(offset) - BigInt(at ?? 0)
    }
    return { behind: total > 0n, distance: String(total), unit: "offsets" }
  }
}

const orderings: Record<Kind, Ordering> = {
  stream: streamLike("stream"),
  integer: streamLike("integer"),
  "ms-seq": streamLike("ms-seq"),
  lsn,
  string: lexicographic,
  "json-map": jsonMap
}

/** The rules of `kind`. */
export const ordering = (kind: Kind): Ordering => orderings[kind]

/** True when a write of `next` over `held` moves the cursor forward. */
export const advances = (rules: Ordering, next: Keyed, held: Keyed): boolean =>
  rules.compare(next, held) === "after"
