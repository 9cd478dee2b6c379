/**
 * Parsers for what the command line and stdin carry: durations (`30s`, `5m`, `7 days`, plain
 * milliseconds), limits that `none` removes, rates (`100/1s`), port exclusions, group service
 * specs and JSON lines. Each failure is an
 * `InvalidInput` naming where the bad value came from (exit code 2).
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import { InvalidInput } from "./Failure.js"

const units: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000
}

const shortDuration = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/

/**
 * A duration option in milliseconds: `1500` (milliseconds), `250ms`, `30s`, `5m`, `2h`, `7d`, or
 * Effect's long forms (`30 seconds`, `7 days`). Anything else is `InvalidInput` naming `--option`.
 * Bounds are the services' to check.
 */
export const duration = (option: string, text: string): Either.Either<number, InvalidInput> => {
  const trimmed = text.trim()
  if (/^\d+$/.test(trimmed)) return Either.right(Number(trimmed))
  const match = shortDuration.exec(trimmed)
  if (match?.[1] !== undefined && match[2] !== undefined) {
    return Either.right(Math.round(Number(match[1]) * (units[match[2]] ?? 1)))
  }
  const decoded = /^\d/.test(trimmed) ? Duration.decodeUnknown(trimmed) : Option.none()
  return Option.match(decoded, {
    onNone: () =>
      Either.left(
        new InvalidInput({
          source: `--${option}`,
          reason: `${JSON.stringify(text)} is not a duration (e.g. 30s, 5m, 2h, 7d, '90 seconds', or milliseconds)`
        })
      ),
    onSome: (value) => Either.right(Duration.toMillis(value))
  })
}

/** An optional option read by `parse`: undefined when absent. */
export const optional =
  <A>(parse: (option: string, text: string) => Either.Either<A, InvalidInput>) =>
  (option: string, text: Option.Option<string>): Either.Either<A | undefined, InvalidInput> =>
    Option.match(text, { onNone: () => Either.right(undefined), onSome: (given) => parse(option, given) })

/** An optional duration option: undefined when absent. */
export const optionalDuration = optional(duration)

/**
 * A limit option that `none` removes: a whole number, or `none` (null). Anything else is
 * `InvalidInput` naming `--option`; bounds are the services' to check.
 */
export const limitOrNone = (option: string, text: string): Either.Either<number | null, InvalidInput> => {
  const trimmed = text.trim()
  if (trimmed === "none") return Either.right(null)
  if (/^\d+$/.test(trimmed)) return Either.right(Number(trimmed))
  return Either.left(
    new InvalidInput({
      source: `--${option}`,
      reason: `${JSON.stringify(text)} is not a whole number or none`
    })
  )
}

/** A rate: at most `limit` per `interval` milliseconds. */
export interface Rate {
  readonly limit: number
  readonly interval: number
}

/**
 * A rate option that `none` removes: `N/DURATION` (`100/1s`, `5/250ms`, `600/1m`; the duration
 * as `duration` reads it), or `none` (null). Anything else is `InvalidInput` naming `--option`;
 * bounds are the services' to check.
 */
export const rateOrNone = (option: string, text: string): Either.Either<Rate | null, InvalidInput> => {
  const trimmed = text.trim()
  if (trimmed === "none") return Either.right(null)
  const slash = trimmed.indexOf("/")
  const limit = trimmed.slice(0, slash).trim()
  const interval = slash === -1 ? undefined : duration(option, trimmed.slice(slash + 1))
  if (!/^\d+$/.test(limit) || interval === undefined || Either.isLeft(interval)) {
    return Either.left(
      new InvalidInput({
        source: `--${option}`,
        reason: `${JSON.stringify(text)} is not N/DURATION (e.g. 100/1s, 5/250ms) or none`
      })
    )
  }
  return Either.right({ limit: Number(limit), interval: interval.right })
}

/** A port exclusion: `5432` becomes a number; ranges (`6000-6010`) stay text for the service to check. */
export const exclusion = (text: string): number | string => {
  const trimmed = text.trim()
  return /^\d+$/.test(trimmed) ? Number(trimmed) : trimmed
}

/** One service of `keel port reserve-group`: `TAG`, `TAG=PREFERRED` or `TAG+OFFSET`. */
export interface ServiceSpec {
  readonly tag: string
  readonly preferred?: number | undefined
  readonly offset?: number | undefined
}

const serviceSpec = /^([^=+]+?)(?:=(\d+))?(?:\+(\d+))?$/

/** Parses `TAG`, `TAG=PREFERRED` (a preferred port) or `TAG+OFFSET` (placed at base + offset). */
export const service = (text: string): Either.Either<ServiceSpec, InvalidInput> => {
  const match = serviceSpec.exec(text)
  if (match === null || match[1] === undefined) {
    return Either.left(
      new InvalidInput({
        source: `service ${JSON.stringify(text)}`,
        reason: "expected TAG, TAG=PREFERRED_PORT or TAG+OFFSET"
      })
    )
  }
  return Either.right({
    tag: match[1],
    preferred: match[2] === undefined ? undefined : Number(match[2]),
    offset: match[3] === undefined ? undefined : Number(match[3])
  })
}

/**
 * The JSON values of a JSON-lines text, one per non-blank line. The first malformed line fails
 * the whole input (`InvalidInput` naming `source` and the line number): nothing is half-sent.
 */
export const jsonLines = (
  text: string,
  source: string
): Effect.Effect<ReadonlyArray<unknown>, InvalidInput> =>
  Effect.suspend(() => {
    const values: Array<unknown> = []
    const lines = text.split(/\r?\n/)
    for (let index = 0; index < lines.length; index++) {
      const line = lines[index]?.trim() ?? ""
      if (line === "") continue
      try {
        values.push(JSON.parse(line))
      } catch (error) {
        return Effect.fail(
          new InvalidInput({
            source: `${source} line ${index + 1}`,
            reason: `not JSON: ${error instanceof Error ? error.message : String(error)}`
          })
        )
      }
    }
    return Effect.succeed(values)
  })
