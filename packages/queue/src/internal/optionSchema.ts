/**
 * The parts the option Schemas of `Options.ts` are built from, and the one decoder that turns a
 * rejected option into `InvalidOption`. Each field schema carries the text of what it expects, so
 * the error names the option (its path), the value given and what was expected — whichever check
 * inside the field failed. Durations are decoded from their raw input (a `Duration` clamps negative
 * numbers to zero, which would hide the mistake) to whole milliseconds.
 */
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { describeInput } from "../Input.js"
import { InvalidOption } from "../QueueError.js"

/** Inclusive bounds of a number option. */
export interface Bounds {
  readonly min: number
  readonly max: number
}

/** Renders a millisecond bound for an error message. */
export const human = (ms: number): string => (ms === 0 ? "0 ms" : Duration.format(Duration.millis(ms)))

/** The text of a duration's bounds, as errors show it. */
export const durationExpected = (bounds: Bounds): string =>
  `a duration from ${human(bounds.min)} to ${human(bounds.max)}`

/** `schema`, every failure of which reads as `expected`. */
export const expecting = <A, I>(schema: Schema.Schema<A, I>, expected: string): Schema.Schema<A, I> =>
  schema.annotations({ message: () => ({ message: expected, override: true }) })

const isDurationInput = (input: unknown): input is Duration.DurationInput =>
  typeof input === "number" ||
  typeof input === "string" ||
  typeof input === "bigint" ||
  Array.isArray(input) ||
  Duration.isDuration(input)

/** A `Duration.DurationInput` as callers write it: a number of milliseconds, a `Duration`, `"30 seconds"`. */
const DurationInput = Schema.declare(isDurationInput)

/**
 * Whole milliseconds of a duration input within `bounds`, or undefined when it is not one: a
 * number of milliseconds, a `Duration`, or a string such as `"30 seconds"` (a leading minus sign
 * refused rather than clamped).
 */
export const millisOf = (input: unknown, bounds: Bounds): number | undefined => {
  let millis: number
  if (typeof input === "number") {
    millis = input
  } else if (typeof input === "string") {
    if (/^\s*-/.test(input)) return undefined
    const decoded = Duration.decodeUnknown(input.trim())
    if (Option.isNone(decoded)) return undefined
    millis = Duration.toMillis(decoded.value)
  } else if (Duration.isDuration(input)) {
    millis = Duration.toMillis(input)
  } else {
    return undefined
  }
  return Number.isFinite(millis) && millis >= bounds.min && millis <= bounds.max
    ? Math.ceil(millis)
    : undefined
}

/** A duration option within `bounds`, decoded to whole milliseconds. */
export const Millis = (bounds: Bounds): Schema.Schema<number, Duration.DurationInput> =>
  expecting(
    Schema.transformOrFail(DurationInput, Schema.Number, {
      strict: true,
      decode: (input, _, ast) => {
        const millis = millisOf(input, bounds)
        return millis === undefined
          ? ParseResult.fail(new ParseResult.Type(ast, input))
          : ParseResult.succeed(millis)
      },
      encode: (millis) => ParseResult.succeed(millis)
    }),
    durationExpected(bounds)
  )

/** An integer option within `bounds`. */
export const Int = (bounds: Bounds): Schema.Schema<number> =>
  expecting(
    Schema.Number.pipe(Schema.filter((n) => Number.isSafeInteger(n) && n >= bounds.min && n <= bounds.max)),
    `an integer from ${bounds.min} to ${bounds.max}`
  )

/** A number option within `bounds` (fractions allowed). */
export const Fraction = (bounds: Bounds): Schema.Schema<number> =>
  expecting(
    Schema.Number.pipe(Schema.filter((n) => n >= bounds.min && n <= bounds.max)),
    `a number from ${bounds.min} to ${bounds.max}`
  )

// biome-ignore lint/suspicious/noControlCharactersInRegex: detecting control characters is the point
const controlCharacters = /[\u0000-\u001f\u007f]/

/** A label option (a key, an id, a name): 1 to `max` characters without control characters. */
export const Label = (max: number): Schema.Schema<string> =>
  expecting(
    Schema.String.pipe(Schema.filter((s) => s.length >= 1 && s.length <= max && !controlCharacters.test(s))),
    `a string of 1 to ${max} characters without control characters`
  )

/** One of the literals of `schema`. */
export const OneOf = <A extends string>(schema: Schema.Schema<A>, expected: string): Schema.Schema<A> =>
  expecting(schema, expected)

/** A boolean option. */
export const Flag: Schema.Schema<boolean> = expecting(Schema.Boolean, "true or false")

/**
 * An options object: `fields` decoded in order (the first failure is the one reported); anything
 * but an object is refused as a whole.
 */
export const options = <Fields extends Schema.Struct.Fields>(fields: Fields) =>
  Schema.Struct(fields).annotations({ message: () => "an object" })

const valueAt = (input: unknown, path: ReadonlyArray<PropertyKey>): unknown =>
  path.reduce<unknown>(
    (value, key) => (typeof value === "object" && value !== null ? Reflect.get(value, key) : undefined),
    input
  )

const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path
    .map((key, index) =>
      typeof key === "number" ? `[${key}]` : index === 0 ? String(key) : `.${String(key)}`
    )
    .join("")

/** What `decoder` returns: options checked and resolved, or the first rejected option. */
export type Decode<A, I> = (input: I, prefix?: string) => Either.Either<A, InvalidOption>

/**
 * A decoder for `schema`, built once: the input decoded to what the operation uses, or
 * `InvalidOption` for the first rejected option, named `prefix` + its path (`messages[3].` +
 * `backoff.base`). Unknown keys are ignored (options objects are often spread from larger ones).
 */
export const decoder = <A, I>(schema: Schema.Schema<A, I>): Decode<A, I> => {
  const decode = unknownDecoder(schema)
  return (input, prefix = "") => decode(input, prefix)
}

/**
 * A decoder for one value given on its own (an id argument, a configuration value): the value, or
 * `InvalidOption` naming it `option`.
 */
export const valueDecoder = <A, I>(
  schema: Schema.Schema<A, I>
): ((option: string, input: unknown) => Either.Either<A, InvalidOption>) => {
  const decode = unknownDecoder(schema)
  return (option, input) => decode(input, `${option}.`)
}

const unknownDecoder = <A, I>(
  schema: Schema.Schema<A, I>
): ((input: unknown, prefix: string) => Either.Either<A, InvalidOption>) => {
  const decode = ParseResult.decodeUnknownEither(schema, { errors: "first", onExcessProperty: "ignore" })
  return (input, prefix) =>
    Either.mapLeft(decode(input), (issue) => {
      const [first] = ParseResult.ArrayFormatter.formatIssueSync(issue)
      const path = first?.path ?? []
      const name = formatPath(path)
      return new InvalidOption({
        option: name === "" ? (prefix === "" ? "options" : prefix.replace(/\.$/, "")) : `${prefix}${name}`,
        value: describeInput(valueAt(input, path)),
        expected: first?.message ?? "valid options"
      })
    })
}
