/**
 * `Queue.events`: the event log as a `Stream`, in any process. It reads the log by id from a
 * starting point (the newest event by default), a page at a time, and between pages waits for a
 * signal (PostgreSQL notifies; the memory store signals its own writes) or at most the poll interval.
 * Only queues created or changed with `events: true` record events.
 */
import { Chunk, DateTime, Duration, Effect, Queue, Stream } from "effect"
import { MessageId, parseQueueName, QueueEvent, QueueName } from "../Message.js"
import type { EventsOptions } from "../Options.js"
import {
  type InvalidOption,
  type InvalidQueueName,
  QueueNotFound,
  type QueueStoreError
} from "../QueueError.js"
import type * as QueueStore from "../QueueStore.js"
import { duration, integer, optionalInteger } from "./validate.js"

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

  /** A `since` option: an event id, 0 for the start of the log. */
  const sinceOf = (since: unknown) => integer("since", since, { min: 0, max: Number.MAX_SAFE_INTEGER })

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
        const pollMs =
          options.pollInterval === undefined
            ? 250
            : yield* duration("pollInterval", options.pollInterval, { min: 1, max: 60_000 })
        const since = options.since === undefined ? undefined : yield* sinceOf(options.since)
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
    options: { readonly since?: number | undefined; readonly limit?: number | undefined } = {}
  ): Effect.Effect<
    ReadonlyArray<QueueEvent>,
    InvalidQueueName | InvalidOption | QueueNotFound | QueueStoreError
  > =>
    Effect.gen(function* () {
      const name = queue === undefined ? undefined : yield* parseQueueName(queue)
      const since = options.since === undefined ? 0 : yield* sinceOf(options.since)
      const limit = yield* optionalInteger("limit", options.limit, { min: 1, max: 10_000 }, 100)
      return yield* pageOf(name, since, limit)
    })

  return { events, readEvents }
}
