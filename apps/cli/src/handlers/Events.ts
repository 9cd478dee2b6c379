/**
 * `keel queue events` (loaded on demand): the queue service's event log, printed as it is read,
 * one line per event (with `--json`, one JSON object per line, as `Schemas.QueueEvent` encodes it).
 *
 * Without `--follow` the command prints the log as it is, a page at a time (`Queue.readEvents`),
 * and stops when it has caught up. With `--follow` it follows the log's stream (`Queue.events`)
 * until SIGINT/SIGTERM and exits 0.
 */
import * as Queue from "@keel/queue/Queue"
import * as Schemas from "@keel/queue/Schemas"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type { EventsInput } from "../commands/Events.js"
import * as Layers from "../Layers.js"
import * as Output from "../Output.js"
import { Shutdown } from "../Shutdown.js"

/** Events per read without `--follow`. */
const pageSize = 500

const encodeEvent = Schema.encodeSync(Schemas.QueueEvent)

/** `12  2026-12-07T01:02:03.456Z  orders  #41  leased`, and the error when there is one. */
const line = (event: Schemas.QueueEvent): string =>
  [
    String(event.id),
    DateTime.formatIso(event.at),
    event.queue,
    `#${event.messageId}`,
    event.type,
    ...(event.error === null ? [] : [Output.singleLine(event.error)])
  ].join("  ")

const print = (event: Schemas.QueueEvent) => Output.result(encodeEvent(event), () => line(event))

/** Events as the stream reads them, until SIGINT/SIGTERM, which ends the command cleanly. */
const follow = <E, R>(events: Stream.Stream<Schemas.QueueEvent, E, R>) =>
  Stream.runForEach(events, print).pipe(
    Effect.onExit((exit) =>
      Exit.isInterrupted(exit) ? Effect.flatMap(Shutdown, (clean) => Ref.set(clean, true)) : Effect.void
    )
  )

/** Events read a page at a time after `since`, until a page is not full: the log as it is now. */
const recorded = (queues: Queue.Service, name: string | undefined, since: number) =>
  Effect.gen(function* () {
    let cursor = since
    for (;;) {
      const page = yield* queues.readEvents(name, { since: cursor, limit: pageSize })
      yield* Effect.forEach(page, print, { discard: true })
      const last = page[page.length - 1]
      if (last === undefined || page.length < pageSize) return
      cursor = last.id
    }
  })

/** `keel queue events`. */
export const events = (input: EventsInput) =>
  Effect.provide(
    Effect.gen(function* () {
      const queues = yield* Queue.Queues
      const name = Option.getOrUndefined(input.queue)
      // Checked first, so that a missing queue fails however the read below is timed.
      if (name !== undefined) yield* queues.getQueue(name)
      const since = Option.getOrElse(input.since, () => 0)
      yield* input.follow ? follow(queues.events(name, { since })) : recorded(queues, name, since)
    }),
    Layers.queue
  )
