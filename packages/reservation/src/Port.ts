/**
 * Port numbers and ranges: the branded types every other module trusts, and the validators that
 * turn raw input (a CLI flag, a JSON field, a config entry) into them with a typed error naming
 * the field.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { InvalidPort, InvalidRange } from "./ReservationError.js"

/** The lowest TCP/UDP port number. */
export const lowest = 1
/** The highest TCP/UDP port number. */
export const highest = 65535

/** A port number: an integer from 1 to 65535. */
export const Port = Schema.Int.pipe(Schema.between(lowest, highest), Schema.brand("Port"))

/** A port number: an integer from 1 to 65535. */
export type Port = typeof Port.Type

/** An inclusive range of ports whose `min` does not exceed its `max`. */
export const PortRange = Schema.Struct({ min: Port, max: Port }).pipe(
  Schema.filter((range) => range.min <= range.max || "the range is inverted (min must not exceed max)"),
  Schema.brand("PortRange")
)

/** An inclusive range of ports whose `min` does not exceed its `max`. */
export type PortRange = typeof PortRange.Type

/**
 * How a range is written in requests and the config file: `{ "min": 5000, "max": 7000 }` or
 * the text `"5000-7000"`.
 */
export const RangeInput = Schema.Union(
  Schema.Struct({ min: Schema.Number, max: Schema.Number }),
  Schema.String
)

/** How a range is written in requests and the config file. */
export type RangeInput = typeof RangeInput.Type

/** How an exclusion is written: a single port (`5432`), `"6000-6010"`, or `{ min, max }`. */
export const ExclusionInput = Schema.Union(Schema.Number, RangeInput)

/** How an exclusion is written. */
export type ExclusionInput = typeof ExclusionInput.Type

const isPort = Schema.is(Port)

/** `value` as a `Port`, or `InvalidPort` naming `field`. */
export const validate = (value: number, field: string): Effect.Effect<Port, InvalidPort> =>
  isPort(value) ? Effect.succeed(value) : Effect.fail(new InvalidPort({ field, value: String(value) }))

/** Builds a range from validated ends; `InvalidRange` when inverted. */
export const range = (min: Port, max: Port, field: string): Effect.Effect<PortRange, InvalidRange> =>
  min <= max
    ? Effect.succeed(PortRange.make({ min, max }))
    : Effect.fail(new InvalidRange({ field, min, max }))

const rangeText = /^\s*(\d+)\s*(?:-|\.\.)\s*(\d+)\s*$/

/**
 * Parses a range written as `{ min, max }`, `"5000-7000"` or `"5000..7000"`. Ends outside 1–65535
 * are `InvalidPort` (naming `field.min` / `field.max`); an inverted range is `InvalidRange`.
 */
export const parseRange = (
  input: RangeInput,
  field: string
): Effect.Effect<PortRange, InvalidPort | InvalidRange> => {
  if (typeof input !== "string") {
    return Effect.flatMap(
      Effect.all([validate(input.min, `${field}.min`), validate(input.max, `${field}.max`)]),
      ([min, max]) => range(min, max, field)
    )
  }
  const match = rangeText.exec(input)
  if (match === null) return Effect.fail(new InvalidPort({ field, value: input }))
  return parseRange({ min: Number(match[1]), max: Number(match[2]) }, field)
}

/** Parses one exclusion: a single port becomes the range `port-port`. */
export const parseExclusion = (
  input: ExclusionInput,
  field: string
): Effect.Effect<PortRange, InvalidPort | InvalidRange> =>
  typeof input === "number"
    ? Effect.flatMap(validate(input, field), (port) => range(port, port, field))
    : parseRange(input, field)

/** How many ports the range holds. */
export const size = (portRange: PortRange): number => portRange.max - portRange.min + 1

/** True when `port` lies inside `portRange`. */
export const contains = (portRange: PortRange, port: number): boolean =>
  port >= portRange.min && port <= portRange.max

/** `5000-7000`, or `5432` for a one-port range. */
export const format = (portRange: PortRange): string =>
  portRange.min === portRange.max ? String(portRange.min) : `${portRange.min}-${portRange.max}`

/**
 * `value` as a port of `portRange`, or `undefined` when it lies outside. Every integer between
 * the two ends of a valid range is itself a valid port, which is what makes the cast sound.
 */
export const inRange = (portRange: PortRange, value: number): Port | undefined =>
  Number.isInteger(value) && contains(portRange, value) ? (value as Port) : undefined

/** Every port of `portRange`, ascending. */
export function* ports(portRange: PortRange): Generator<Port> {
  for (let value = portRange.min; value <= portRange.max; value++) {
    const port = inRange(portRange, value)
    if (port !== undefined) yield port
  }
}
