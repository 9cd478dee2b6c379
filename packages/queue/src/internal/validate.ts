/**
 * Input checks shared by every operation: durations and integers are checked against their raw
 * input (a `Duration` clamps negative numbers to zero, which would hide the mistake), so a
 * negative, non-finite or absurd value is an `InvalidOption` naming the option. They are plain
 * `Either`s (yieldable in `Effect.gen`): checking input costs no effect steps on the hot path.
 */
import { Duration, Either, Option } from "effect"
import { describeInput, maxVisibilityTimeoutMs } from "../Message.js"
import { InvalidOption } from "../QueueError.js"

/** Renders a millisecond bound for an error message. */
const human = (ms: number): string => (ms === 0 ? "0 ms" : Duration.format(Duration.millis(ms)))

/**
 * A duration option, in whole milliseconds, from `min` to `max` inclusive. Accepts a number of
 * milliseconds, a `Duration`, or a string such as `"30 seconds"`.
 */
export const duration = (
  option: string,
  input: unknown,
  bounds: { readonly min: number; readonly max: number }
): Either.Either<number, InvalidOption> => {
  const invalid = () =>
    Either.left(
      new InvalidOption({
        option,
        value: describeInput(input),
        expected: `a duration from ${human(bounds.min)} to ${human(bounds.max)}`
      })
    )
  let millis: number
  if (typeof input === "number") {
    millis = input
  } else if (typeof input === "string") {
    if (/^\s*-/.test(input)) return invalid()
    const decoded = Duration.decodeUnknown(input.trim())
    if (Option.isNone(decoded)) return invalid()
    millis = Duration.toMillis(decoded.value)
  } else if (Duration.isDuration(input)) {
    millis = Duration.toMillis(input)
  } else {
    return invalid()
  }
  if (!Number.isFinite(millis) || millis < bounds.min || millis > bounds.max) return invalid()
  return Either.right(Math.ceil(millis))
}

/** An optional duration option: `fallback` when absent. */
export const optionalDuration = (
  option: string,
  input: unknown,
  bounds: { readonly min: number; readonly max: number },
  fallback: number
): Either.Either<number, InvalidOption> =>
  input === undefined ? Either.right(fallback) : duration(option, input, bounds)

/** An integer option from `min` to `max` inclusive. */
export const integer = (
  option: string,
  input: unknown,
  bounds: { readonly min: number; readonly max: number }
): Either.Either<number, InvalidOption> =>
  typeof input === "number" && Number.isSafeInteger(input) && input >= bounds.min && input <= bounds.max
    ? Either.right(input)
    : Either.left(
        new InvalidOption({
          option,
          value: describeInput(input),
          expected: `an integer from ${bounds.min} to ${bounds.max}`
        })
      )

/** An optional integer option: `fallback` when absent. */
export const optionalInteger = (
  option: string,
  input: unknown,
  bounds: { readonly min: number; readonly max: number },
  fallback: number
): Either.Either<number, InvalidOption> =>
  input === undefined ? Either.right(fallback) : integer(option, input, bounds)

/** The `visibilityTimeout` option (1 ms to 12 hours) when given; undefined when absent (the queue's setting). */
export const visibilityTimeout = (input: unknown): Either.Either<number | undefined, InvalidOption> =>
  input === undefined
    ? Either.right(undefined)
    : duration("visibilityTimeout", input, { min: 1, max: maxVisibilityTimeoutMs })

/** A message id option (or an id cursor): a positive safe integer. */
export const id = (option: string, input: unknown): Either.Either<number, InvalidOption> =>
  integer(option, input, { min: 1, max: Number.MAX_SAFE_INTEGER })
