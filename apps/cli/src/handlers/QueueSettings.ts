/**
 * A queue's settings between the command line and the queue: the flags of `queue create` and
 * `queue configure` read into the queue's options, and the settings as a table (`queue list`,
 * `queue info`). Bounds are the queue's to check (`InvalidOption`, exit 2).
 */
import type { Options as QueueOptions, Schemas } from "@keel/queue"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { SettingsInput } from "../commands/QueueSettings.js"
import { InvalidInput } from "../Failure.js"
import * as Output from "../Output.js"
import * as Parse from "../Parse.js"

/** `--events` true, `--no-events` false, neither undefined; both is `InvalidInput`. */
const eventsOf = (input: SettingsInput): Effect.Effect<boolean | undefined, InvalidInput> =>
  input.events && input.noEvents
    ? Effect.fail(new InvalidInput({ source: "--events", reason: "it cannot be given with --no-events" }))
    : Effect.succeed(input.events ? true : input.noEvents ? false : undefined)

/** The settings the flags give; absent flags stay undefined (the default, or unchanged). */
export const settingsOf = (input: SettingsInput) =>
  Effect.gen(function* () {
    const settings: QueueOptions.SettingsOptions = {
      visibilityTimeout: yield* Parse.optionalDuration("visibility-timeout", input.visibilityTimeout),
      maxDeliveries: Option.getOrUndefined(input.maxDeliveries),
      retention: yield* Parse.optionalDuration("retention", input.retention),
      concurrencyLimit: yield* Parse.optional(Parse.limitOrNone)("concurrency-limit", input.concurrencyLimit),
      rateLimit: yield* Parse.optional(Parse.rateOrNone)("rate-limit", input.rateLimit),
      groupConcurrency: Option.getOrUndefined(input.groupConcurrency),
      groupOnDead: Option.getOrUndefined(input.groupOnDead),
      events: yield* eventsOf(input)
    }
    return settings
  })

const units = [
  ["d", 86_400_000],
  ["h", 3_600_000],
  ["m", 60_000],
  ["s", 1_000]
] as const

/** `ms` in its largest whole unit (`1s`, `90s`, `1500ms`), as `--rate-limit` reads it back. */
const compact = (ms: number): string => {
  const unit = units.find(([, size]) => ms > 0 && ms % size === 0)
  return unit === undefined ? `${ms}ms` : `${ms / unit[1]}${unit[0]}`
}

/** A rate limit as `--rate-limit` takes it (`100/1s`), or `none`. */
export const rateText = (rate: Schemas.QueueInfo["rateLimit"]): string =>
  rate === null ? "none" : `${rate.limit}/${compact(Duration.toMillis(rate.interval))}`

/** Queues and their settings, one row each. */
export const infoTable = (queues: ReadonlyArray<Schemas.QueueInfo>): string =>
  Output.table(
    [
      "QUEUE",
      "VISIBILITY TIMEOUT",
      "MAX DELIVERIES",
      "RETENTION",
      "CONCURRENCY LIMIT",
      "RATE LIMIT",
      "GROUP CONCURRENCY",
      "GROUP ON DEAD",
      "EVENTS",
      "CREATED"
    ],
    queues.map((queue) => [
      queue.name,
      Duration.format(queue.visibilityTimeout),
      String(queue.maxDeliveries),
      Duration.format(queue.retention),
      queue.concurrencyLimit === null ? "none" : String(queue.concurrencyLimit),
      rateText(queue.rateLimit),
      String(queue.groupConcurrency),
      queue.groupOnDead,
      queue.events ? "yes" : "no",
      DateTime.formatIso(queue.createdAt)
    ])
  )
