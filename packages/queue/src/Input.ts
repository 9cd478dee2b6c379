/**
 * Checks of user input shared by every operation: payloads (plain JSON within a size), idempotency
 * keys, worker ids and group names, and how a rejected value is shown in an error. Plain code over
 * `Either` (no effect per check); re-exported by `Message`.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { InvalidOption, InvalidPayload, PayloadTooLarge } from "./QueueError.js"

/** The longest idempotency key, in characters. */
export const maxDedupKeyLength = 512
/** The longest worker id, in characters. */
export const maxWorkerIdLength = 128

const describe = (value: unknown): string => {
  if (value === undefined) return "undefined"
  if (typeof value === "number") return String(value)
  if (typeof value === "bigint") return "a bigint"
  if (typeof value === "function") return "a function"
  if (typeof value === "symbol") return "a symbol"
  if (typeof value === "object" && value !== null)
    return `an instance of ${value.constructor?.name ?? "a class"}`
  return typeof value
}

/** Where a value stops being plain JSON: the path below the value, and what is wrong there. */
type Problem = readonly [path: string, reason: string]

/**
 * The first place where `value` is not plain JSON, or undefined when it is plain JSON throughout.
 * Paths are built only on the way back from a problem: valid payloads (the hot path) build none.
 */
const notJson = (value: unknown, ancestors: Set<object>, depth: number): Problem | undefined => {
  if (value === null || typeof value === "string" || typeof value === "boolean") return undefined
  if (typeof value === "number") return Number.isFinite(value) ? undefined : ["", `is ${describe(value)}`]
  if (typeof value !== "object") return ["", `is ${describe(value)}`]
  if (depth > 128) return ["", "is nested more than 128 levels deep"]
  if (ancestors.has(value)) return ["", "refers back to an enclosing value (a cycle)"]
  ancestors.add(value)
  try {
    if (Array.isArray(value)) {
      for (let index = 0; index < value.length; index++) {
        const problem = notJson(value[index], ancestors, depth + 1)
        if (problem !== undefined) return [`[${index}]${problem[0]}`, problem[1]]
      }
      return undefined
    }
    const prototype = Object.getPrototypeOf(value)
    if (prototype !== Object.prototype && prototype !== null) return ["", `is ${describe(value)}`]
    const record = value as Record<string, unknown>
    for (const key of Object.keys(record)) {
      const problem = notJson(record[key], ancestors, depth + 1)
      if (problem !== undefined) return [`.${key}${problem[0]}`, problem[1]]
    }
    return undefined
  } finally {
    ancestors.delete(value)
  }
}

/**
 * The JSON text of `payload`, when it is plain JSON (null, booleans, finite numbers, strings,
 * arrays, plain objects; no cycles, no undefined) and at most `limit` UTF-8 bytes.
 */
export const encodePayload = (
  payload: unknown,
  limit: number
): Either.Either<string, InvalidPayload | PayloadTooLarge> => {
  const problem = notJson(payload, new Set(), 0)
  if (problem !== undefined)
    return Either.left(new InvalidPayload({ reason: `$${problem[0]} ${problem[1]}` }))
  const text = JSON.stringify(payload)
  const size = Buffer.byteLength(text, "utf8")
  return size > limit ? Either.left(new PayloadTooLarge({ size, limit })) : Either.right(text)
}

/** Parses a payload given as JSON text (from a command line or a request body). */
export const parsePayload = (text: string): Effect.Effect<unknown, InvalidPayload> =>
  Effect.try({
    try: (): unknown => JSON.parse(text),
    catch: (error) =>
      new InvalidPayload({
        reason: `not JSON text: ${error instanceof Error ? error.message : String(error)}`
      })
  })

/** A string option of 1 to `max` characters without control characters. */
const label = (value: unknown, option: string, max: number): Either.Either<string, InvalidOption> =>
  typeof value === "string" && value.length >= 1 && value.length <= max && !hasControl(value)
    ? Either.right(value)
    : Either.left(
        new InvalidOption({
          option,
          value: describeInput(value),
          expected: `a string of 1 to ${max} characters without control characters`
        })
      )

/** Checks an idempotency key: 1–512 characters, no control characters. */
export const validateDedupKey = (key: unknown, option = "dedupKey"): Either.Either<string, InvalidOption> =>
  label(key, option, maxDedupKeyLength)

/** Checks a worker id: 1–128 characters, no control characters. */
export const validateWorkerId = (id: unknown, option = "workerId"): Either.Either<string, InvalidOption> =>
  label(id, option, maxWorkerIdLength)

/** The longest group name, in characters. */
export const maxGroupLength = 128

/** Checks a group name: 1–128 characters, no control characters. */
export const validateGroup = (group: unknown, option = "group"): Either.Either<string, InvalidOption> =>
  label(group, option, maxGroupLength)

// biome-ignore lint/suspicious/noControlCharactersInRegex: detecting control characters is the point
const controlCharacters = /[\u0000-\u001f\u007f]/

const hasControl = (text: string): boolean => controlCharacters.test(text)

/** User input rendered for an error message: strings quoted and cut at 100 characters. */
export const describeInput = (value: unknown): string => {
  if (typeof value === "string") return JSON.stringify(value.length > 100 ? `${value.slice(0, 100)}…` : value)
  if (typeof value === "number" || typeof value === "boolean" || value === null) return String(value)
  return describe(value)
}
