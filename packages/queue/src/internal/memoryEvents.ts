/**
 * The memory store's event log: what the SQL triggers of migration 8 record, recorded by the
 * memory store's operations at their own time (`at` is the operation's clock here). Readers are
 * signalled on every recorded event.
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type * as QueueStore from "../QueueStore.js"
import type { EventType } from "../Schemas.js"

interface Recorded extends Omit<QueueStore.EventRow, "queue"> {
  readonly queueId: number
}

/** An event log over the store's queues (by id, and by name). */
export const make = (queues: ReadonlyMap<string, QueueStore.QueueRow>) => {
  const log: Array<Recorded> = []
  let lastId = 0
  const listeners = new Set<() => void>()
  const byId = (queueId: number) => [...queues.values()].find((queue) => queue.id === queueId)

  /** Records an event of message `messageId` of queue `queueId`, if that queue records events. */
  const record = (
    queueId: number,
    messageId: number,
    type: EventType,
    at: number,
    error: string | null = null
  ) => {
    if (byId(queueId)?.events !== true) return
    log.push({ id: ++lastId, queueId, messageId, type, at, error })
    for (const listener of listeners) listener()
  }

  const readEvents: QueueStore.Store["readEvents"] = (name, after, limit) =>
    Effect.sync(() => {
      const queue = name === undefined ? undefined : queues.get(name)
      if (name !== undefined && queue === undefined) return undefined
      const names = new Map([...queues.values()].map((row) => [row.id, row.name]))
      const rows: Array<QueueStore.EventRow> = []
      for (const event of log) {
        if (rows.length >= limit) break
        const eventQueue = names.get(event.queueId)
        if (event.id <= after || eventQueue === undefined) continue
        if (queue !== undefined && event.queueId !== queue.id) continue
        const { queueId: _, ...rest } = event
        rows.push({ ...rest, queue: eventQueue })
      }
      return rows
    })

  const eventSignals: QueueStore.Store["eventSignals"] = Stream.async<void>((emit) => {
    const listener = () => void emit.single(undefined)
    listeners.add(listener)
    return Effect.sync(() => listeners.delete(listener))
  })

  /** Deletes up to `limit` events older than their queue's retention at `now` (or of deleted queues). */
  const purge = (now: number, limit: number): number => {
    const kept: Array<Recorded> = []
    let purged = 0
    for (const event of log) {
      const queue = byId(event.queueId)
      if (purged < limit && (queue === undefined || event.at < now - queue.retentionMs)) purged++
      else kept.push(event)
    }
    log.splice(0, log.length, ...kept)
    return purged
  }

  return {
    record,
    purge,
    operations: { readEvents, lastEventId: Effect.sync(() => lastId), eventSignals }
  }
}
