/**
 * Stream positions and their total order. Two forms are accepted:
 *
 * - a Redis stream id `<ms>-<seq>` (e.g. `1700000000000-3`), each part an unsigned 64-bit integer;
 * - an offset, a non-negative integer up to 2^64 − 1 (Kafka-style).
 *
 * Positions are compared as numbers, never as strings: `9-0 < 10-0` and `1-9 < 1-10`. An offset
 * `n` orders as the stream id `n-0`, which is how Redis reads an id given without a sequence.
 * Parts are written without leading zeros, so each position has one spelling per form.
 *
 * The database compares positions through `sortKey`: both parts zero-padded to 20 digits, so the
 * byte order of two keys is the numeric order of the positions on every backend, including for
 * values beyond 2^63 that no BIGINT column can hold.
 */
import * as Either from "effect/Either"
import * as Ord from "effect/Order"
import * as Schema from "effect/Schema"
import { echo, InvalidPosition } from "./CursorError.js"

/** The largest value of either part: 2^64 − 1, Redis's limit for both the milliseconds and the sequence. */
export const maxPart = "18446744073709551615"

/** How many digits each part of a sort key has. */
export const partDigits = maxPart.length

/** The longest text `parse` looks at: two full parts and the dash. */
export const maxLength = 2 * partDigits + 1

const shape = /^(0|[1-9][0-9]*)(?:-(0|[1-9][0-9]*))?$/

/** A part fits in 64 bits: fewer digits than the maximum, or as many and not above it. */
const fits = (digits: string): boolean =>
  digits.length < partDigits || (digits.length === partDigits && digits <= maxPart)

/** Why `text` is not a canonical position, or `undefined` when it is one. */
const problem = (text: string): string | undefined => {
  if (text.length === 0) return "it is empty"
  if (text.length > maxLength) return `it is longer than ${maxLength} characters`
  const match = shape.exec(text)
  if (match === null) {
    return "expected <ms>-<seq> (a Redis stream id) or a non-negative integer offset, digits without leading zeros"
  }
  const ms = match[1] ?? ""
  const seq = match[2]
  if (!fits(ms) || (seq !== undefined && !fits(seq))) return `a part exceeds ${maxPart} (2^64 - 1)`
  return undefined
}

/** The brand every position carries, whatever its namespace's kind (see `PositionKind.ts`). */
const anyBrand = "@keel/cursor/AnyPosition"

/** The longest position text of any kind (a JSON map of many partitions). */
export const maxAnyLength = 65_536

/**
 * A position of any kind in its canonical text, as a store returns it: a stream id or offset, a
 * PostgreSQL LSN, a lexicographic string or a JSON map, as its namespace declares
 * (`PositionKind.ts` checks the form; this schema only bounds the text).
 */
export const Any = Schema.String.pipe(
  Schema.minLength(1),
  Schema.maxLength(maxAnyLength),
  Schema.brand(anyBrand),
  Schema.annotations({
    identifier: "AnyPosition",
    description: "A stream position in the canonical text of its namespace's kind"
  })
)

/** A position of any kind in its canonical text. */
export type Any = typeof Any.Type

/**
 * A stream position in canonical form: `<ms>-<seq>` or a non-negative integer offset, each part at
 * most 2^64 − 1, no leading zeros. Decoding anything else fails with a message saying why.
 */
export const Position = Schema.String.pipe(
  Schema.filter((text) => problem(text)),
  Schema.brand("@keel/cursor/Position"),
  Schema.brand(anyBrand),
  Schema.annotations({
    identifier: "Position",
    description:
      "A Redis stream id <ms>-<seq> (e.g. 1700000000000-3) or a non-negative integer offset (e.g. 42)"
  })
)

/** A stream position in canonical form. */
export type Position = typeof Position.Type

/** Which form a position is written in. */
export type Form = "stream-id" | "offset"

/**
 * `text` as a `Position`, or `InvalidPosition` naming `field` and the reason. Only canonical text
 * is accepted (no whitespace, sign or leading zeros), so a position round-trips unchanged.
 */
export const parse = (text: string, field = "position"): Either.Either<Position, InvalidPosition> => {
  const reason = problem(text)
  // The cast is the brand of text `problem` has just accepted; `Position.make` would check it twice
  // on the hot path of `set`.
  return reason === undefined
    ? Either.right(text as Position)
    : Either.left(new InvalidPosition({ field, position: echo(text), reason }))
}

/** The very beginning of a stream as an offset: `0`. Redis also reads `0` as "from the start". */
export const zero: Position = Position.make("0")

/** The very beginning of a stream as a stream id: `0-0`. Orders equal to `zero`. */
export const streamStart: Position = Position.make("0-0")

/** The form `position` is written in. */
export const form = (position: Position): Form => (position.includes("-") ? "stream-id" : "offset")

/** The milliseconds (or the offset) and the sequence (0 for an offset), as exact integers. */
export const parts = (position: Position): { readonly ms: bigint; readonly seq: bigint } => {
  const dash = position.indexOf("-")
  return dash === -1
    ? { ms: BigInt(position), seq: 0n }
    : { ms: BigInt(position.slice(0, dash)), seq: BigInt(position.slice(dash + 1)) }
}

/**
 * The 40-digit key whose byte order is the numeric order of positions: both parts zero-padded to
 * 20 digits. Equal keys mean equal positions (`5` and `5-0` share one).
 */
export const sortKey = (position: Position): string => {
  const dash = position.indexOf("-")
  return dash === -1
    ? position.padStart(partDigits, "0") + "0".repeat(partDigits)
    : position.slice(0, dash).padStart(partDigits, "0") + position.slice(dash + 1).padStart(partDigits, "0")
}

/** The numeric order of positions (an offset `n` equals the stream id `n-0`). */
export const Order: Ord.Order<Position> = Ord.mapInput(Ord.string, sortKey)

/** True when `position` is strictly after `than`. */
export const isAfter = (position: Position, than: Position): boolean => sortKey(position) > sortKey(than)

/** The later of two positions (the first when they are equal). */
export const max = (a: Position, b: Position): Position => (sortKey(b) > sortKey(a) ? b : a)
