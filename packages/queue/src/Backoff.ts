/**
 * Retry backoff: how long a message whose handler failed waits before its next delivery. A
 * `Schemas.Backoff` is resolved (every field present, durations in milliseconds); it is stored with
 * the message that carries one (`SendOptions.backoff`), and otherwise the consumer's own applies.
 */
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { durationExpected } from "./internal/optionSchema.js"
import { type BackoffOptions, maxBackoffMs } from "./Options.js"
import { InvalidOption } from "./QueueError.js"
import { Backoff, describeInput } from "./Schemas.js"

/** The longest base or cap of a backoff: 365 days. */
export { maxBackoffMs }

/** The defaults of a message's backoff: exponential from 1 s, at most 5 minutes, 25 % jitter. */
export const defaults: Backoff = { kind: "exponential", base: 1_000, max: 300_000, jitter: 0.25 }

/**
 * A backoff's cap in milliseconds: `max` as decoded, by default the larger of `base` and 5 minutes;
 * a `max` below `base` is refused (`option` names the backoff in errors; `given` is the cap as the
 * caller wrote it, for the error's value).
 */
export const capOf = (
  option: string,
  base: number,
  max: number | undefined,
  given: unknown
): Either.Either<number, InvalidOption> => {
  const cap = max ?? Math.max(base, defaults.max)
  return cap < base
    ? Either.left(
        new InvalidOption({
          option: `${option}.max`,
          value: describeInput(given),
          expected: durationExpected({ min: base, max: maxBackoffMs })
        })
      )
    : Either.right(cap)
}

/**
 * A decoded backoff (`Options.BackoffOptions`) with its defaults filled in (the cap as `capOf`;
 * `option` names it in errors; `given` is the input, for the error's value).
 */
export const resolve = (
  option: string,
  decoded: typeof BackoffOptions.Type,
  given: BackoffOptions
): Either.Either<Backoff, InvalidOption> => {
  const base = decoded.base ?? defaults.base
  return Either.map(capOf(option, base, decoded.max, given.max), (max) => ({
    kind: decoded.kind ?? defaults.kind,
    base,
    max,
    jitter: decoded.jitter ?? defaults.jitter
  }))
}

/**
 * The delay before the next delivery after `deliveries` (the failed one included), in whole
 * milliseconds; `random` is a number in [0, 1) that draws the jitter.
 */
export const delayOf = (backoff: Backoff, deliveries: number, random: number): number => {
  const n = Math.max(1, deliveries)
  const grown =
    backoff.kind === "fixed"
      ? backoff.base
      : backoff.kind === "linear"
        ? backoff.base * n
        : backoff.base * 2 ** Math.min(n - 1, 40)
  return Math.floor(Math.min(backoff.max, grown) * (1 - backoff.jitter * random))
}

const isBackoff = Schema.is(Backoff)

/** A stored backoff's text (JSON). */
export const encode = (backoff: Backoff): string => JSON.stringify(backoff)

/** A stored backoff read back; null for no text (or text that is not a backoff). */
export const decode = (text: string | null): Backoff | null => {
  if (text === null) return null
  try {
    const value: unknown = JSON.parse(text)
    return isBackoff(value) ? value : null
  } catch {
    return null
  }
}
