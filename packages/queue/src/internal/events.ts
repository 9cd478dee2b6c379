/**
 * `Queue.events`: the event log as a `Stream`, in any process. It reads the log by id from a
 * starting point (the newest event by default), a page at a time, and between pages waits for a
 * signal (PostgreSQL notifies; the memory store signals its own writes) or at most the poll interval.
 * Only queues created or changed with `events: true` record events.
 */
import * as Chunk from "effect/Chunk"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
import { EventsOptions, ReadEventsOptions } from "../Options.js"
import {
  type InvalidOption,
  type InvalidQueueName,
  QueueNotFound,
  type QueueStoreError
} from "../QueueError.js"
import type * as QueueStore from "../QueueStore.js"
import { MessageId, parseQueueName, QueueEvent, QueueName } from "../Schemas.js"
import { decoder } from "./optionSchema.js"

const decodeEventsOptions = decoder(EventsOptions)
const decodeReadEventsOptions = decoder(ReadEventsOptions)

/** Events read per page. */
const pageSize = 500

const toEvent = (row: QueueStore.EventRow): QueueEvent =>
  new QueueEvent(
    {
      id: row.id,
      queue: QueueName.make(row.queue, true),
      messageId: MessageId.make(row.messageId, true),
      type: row.type,
      at: DateTime.unsafeMake(row.at),
      error: row.error
    },
    true
  )

/** The event log over `store`. */
export const make = (store: QueueStore.Store) => {
  /** Up to `limit` events of `name` (every queue when undefined) after id `after`; `QueueNotFound` without it. */
  const pageOf = (name: QueueName | undefined, after: number, limit: number) =>
    Effect.flatMap(store.readEvents(name, after, limit), (rows) =>
      rows === undefined
        ? Effect.fail(new QueueNotFound({ queue: name ?? "" }))
        : Effect.succeed(rows.map(toEvent))
    )

  /**
   * Events of `queue` (every queue when absent), oldest first, from `options.since` on. Fails with
   * `QueueNotFound` when the queue does not exist (or is deleted while read).
   */
  const events = (
    queue?: string,
    options: EventsOptions = {}
  ): Stream.Stream<QueueEvent, InvalidQueueName | InvalidOption | QueueNotFound | QueueStoreError> =>
    Stream.unwrapScoped(
      Effect.gen(function* () {
        const name = queue === undefined ? undefined : yield* parseQueueName(queue)
        const { pollInterval: pollMs = 250, since } = yield* decodeEventsOptions(options)
        // Checked before the first read, so that a missing queue fails at once.
        if (name !== undefined && (yield* store.findQueue(name)) === undefined) {
          return yield* new QueueNotFound({ queue: name })
        }
        let cursor = since ?? (yield* store.lastEventId)
        const kicks = yield* Queue.sliding<void>(1)
        yield* Effect.forkScoped(
          Stream.runForEach(store.eventSignals, () => Queue.offer(kicks, undefined)).pipe(Effect.ignore)
        )
        const page = Effect.gen(function* () {
          for (;;) {
            const events = yield* pageOf(name, cursor, pageSize)
            const last = events[events.length - 1]
            if (last !== undefined) {
              cursor = last.id
              return Chunk.fromIterable(events)
            }
            yield* Effect.timeoutOption(Queue.take(kicks), Duration.millis(pollMs))
          }
        })
        return Stream.repeatEffectChunk(page)
      })
    )

  /**
   * One page of the log at once, without waiting: up to `limit` (1 to 10,000, default 100) events
   * of `queue` (every queue when absent) after id `since` (default 0), oldest first — empty when
   * nothing newer is recorded. `QueueNotFound` when the queue does not exist.
   */
  const readEvents = (
    queue?: string,
    options: ReadEventsOptions = {}
  ): Effect.Effect<
    ReadonlyArray<QueueEvent>,
    InvalidQueueName | InvalidOption | QueueNotFound | QueueStoreError
  > =>
    Effect.gen(function* () {
      const name = queue === undefined ? undefined : yield* parseQueueName(queue)
      const { since = 0, limit = 100 } = yield* decodeReadEventsOptions(options)
      return yield* pageOf(name, since, limit)
    })

  return { events, readEvents }
}
