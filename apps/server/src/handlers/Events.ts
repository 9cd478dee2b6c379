/**
 * The `events` routes: one page of the queue service's event log after `since` (`Queue.readEvents`),
 * at once when there is one; else, with a `wait`, the first events recorded within it (the log's
 * stream, `Queue.events`), or none when it passes or the server begins to shut down.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import type { Schemas } from "@keel/queue"
import * as Queue from "@keel/queue/Queue"
import * as QueueError from "@keel/queue/QueueError"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { KeelApi } from "../Api.js"
import { defaultEventsLimit, type EventsQuery, maxEventsLimit, maxEventsWaitMs } from "../EventsApi.js"
import { Lifecycle } from "../Lifecycle.js"

/** `value` of query parameter `option` as an integer from `min` to `max`; `fallback` when absent. */
const integer = (option: string, value: number | undefined, min: number, max: number, fallback: number) =>
  value === undefined
    ? Effect.succeed(fallback)
    : Number.isInteger(value) && value >= min && value <= max
      ? Effect.succeed(value)
      : Effect.fail(
          new QueueError.InvalidOption({
            option,
            value: String(value),
            expected: `an integer from ${min} to ${max}`
          })
        )

/** The `events` group. */
export const layer = HttpApiBuilder.group(KeelApi, "events", (handlers) =>
  Effect.gen(function* () {
    const queue = yield* Queue.Queues
    const lifecycle = yield* Lifecycle

    /** Up to `limit` events of `name` (every queue when absent) after `since`, and the next `since`. */
    const page = (name: string | undefined, query: typeof EventsQuery.Type) =>
      Effect.gen(function* () {
        const since = query.since ?? 0
        const limit = yield* integer("limit", query.limit, 1, maxEventsLimit, defaultEventsLimit)
        const wait = yield* integer("wait", query.wait, 0, maxEventsWaitMs, 0)
        const now = yield* queue.readEvents(name, { since, limit })
        const answer = (events: ReadonlyArray<Schemas.QueueEvent>) => ({
          events,
          next: events[events.length - 1]?.id ?? since
        })
        if (now.length > 0 || wait === 0) return answer(now)
        // Nothing yet: the first event recorded within `wait` (or none when the server stops).
        const next = queue
          .events(name, { since })
          .pipe(Stream.chunks, Stream.filter(Chunk.isNonEmpty), Stream.runHead)
        const found = yield* Effect.raceFirst(
          Effect.map(Effect.timeoutOption(next, Duration.millis(wait)), Option.flatten),
          Effect.as(lifecycle.whenStopping, Option.none())
        )
        return answer(
          Option.match(found, {
            onNone: () => [],
            onSome: (chunk) => Chunk.toReadonlyArray(Chunk.take(chunk, limit))
          })
        )
      })

    return handlers
      .handle("queue", ({ path, urlParams }) => page(path.name, urlParams))
      .handle("all", ({ urlParams }) =>
        // Without a queue name there is no name to refuse and no queue to miss.
        Effect.catchTags(page(undefined, urlParams), {
          InvalidQueueName: (error) => Effect.die(error),
          QueueNotFound: (error) => Effect.die(error)
        })
      )
  })
)
