/**
 * Retry backoff: how long a message whose handler failed waits before its next delivery. A
 * `Message.Backoff` is resolved (every field present, durations in milliseconds); it is stored with
 * the message that carries one (`SendOptions.backoff`), and otherwise the consumer's own applies.
 */
import { Either, Schema } from "effect"
import { duration } from "./internal/validate.js"
import { Backoff, BackoffKind, describeInput } from "./Message.js"
import type { BackoffOptions } from "./Options.js"
import { InvalidOption } from "./QueueError.js"

/** The longest base or cap of a backoff: 365 days. */
export const maxBackoffMs = 365 * 24 * 3_600_000

/** The defaults of a message's backoff: exponential from 1 s, at most 5 minutes, 25 % jitter. */
export const defaults: Backoff = { kind: "exponential", base: 1_000, max: 300_000, jitter: 0.25 }

const kinds: ReadonlyArray<unknown> = BackoffKind.literals

/**
 * Checks a backoff given with a send (`option` names it in errors): `kind` one of the kinds,
 * `base` from 0 to 365 days, `max` from `base` to 365 days (default: the larger of `base` and
 * 5 minutes), `jitter` from 0 to 1.
 */
export const resolve = (option: string, input: BackoffOptions): Either.Either<Backoff, InvalidOption> => {
  if (typeof input !== "object" || input === null) {
    return Either.left(new InvalidOption({ option, value: describeInput(input), expected: "an object" }))
  }
  const kind = input.kind ?? defaults.kind
  if (!kinds.includes(kind)) {
    return Either.left(
      new InvalidOption({
        option: `${option}.kind`,
        value: describeInput(kind),
        expected: "one of exponential, linear, fixed"
      })
    )
  }
  const base =
    input.base === undefined
      ? Either.right(defaults.base)
      : duration(`${option}.base`, input.base, { min: 0, max: maxBackoffMs })
  if (Either.isLeft(base)) return Either.left(base.left)
  const max =
    input.max === undefined
      ? Either.right(Math.max(base.right, defaults.max))
      : duration(`${option}.max`, input.max, { min: base.right, max: maxBackoffMs })
  if (Either.isLeft(max)) return Either.left(max.left)
  const jitter = input.jitter ?? defaults.jitter
  if (typeof jitter !== "number" || !(jitter >= 0 && jitter <= 1)) {
    return Either.left(
      new InvalidOption({
        option: `${option}.jitter`,
        value: describeInput(jitter),
        expected: "a number from 0 to 1"
      })
    )
  }
  return Either.right({ kind, base: base.right, max: max.right, jitter })
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
