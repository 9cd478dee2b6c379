/**
 * The memory store's operations on one message by id (`cancel`, `update`, `getMessage`,
 * `setProgress`) and its read-only lease check (`lostLeases`), over the store's state; the same
 * outcomes as `internal/sqlMessages.ts`.
 */
import * as Effect from "effect/Effect"
import type * as QueueStore from "../QueueStore.js"
import type { Backoff } from "../Schemas.js"

/** A message in the memory store: its row, mutable where the store changes it. */
export interface Message {
  readonly id: number
  readonly queueId: number
  payload: string
  priority: number
  readonly enqueuedAt: number
  availableAt: number
  deliveries: number
  leaseToken: string | null
  leasedBy: string | null
  lastError: string | null
  /** Its own retry policy (null: its queue's max deliveries, the consumer's backoff). */
  maxDeliveries: number | null
  backoff: Backoff | null
  /** The progress last reported (JSON text). */
  progress?: string | undefined
  /** Its ordered group: leased only while it is the group's oldest message. */
  group: string | null
  /** The trace context it was sent in (W3C `traceparent`), or null. */
  trace?: string | null | undefined
}

/** Leased now: a lease token set and not expired (in flight; not to be replaced or changed). */
export const leased = (message: Message, now: number): boolean =>
  message.leaseToken !== null && message.availableAt > now

/** An archived message in the memory store. */
export interface Archived extends QueueStore.ArchiveRow {
  readonly queueId: number
  readonly maxDeliveries: number | null
  readonly backoff: Backoff | null
  readonly group: string | null
}

/** A message as the store reports it; `leased` as of `now`. */
const toRow = (message: Message, queue: QueueStore.QueueRow, now: number): QueueStore.MessageRow => ({
  id: message.id,
  payload: message.payload,
  priority: message.priority,
  enqueuedAt: message.enqueuedAt,
  availableAt: message.availableAt,
  deliveries: message.deliveries,
  leased: leased(message, now),
  lastError: message.lastError,
  progress: message.progress ?? null,
  maxDeliveries: message.maxDeliveries ?? queue.maxDeliveries,
  backoff: message.backoff,
  group: message.group
})

/** The queue's dead letters `selection` names (these ids, or the oldest `limit`), oldest first. */
export const chooseDead = (
  archive: ReadonlyMap<number, Archived>,
  queueId: number,
  selection: { readonly ids: ReadonlyArray<number> | undefined; readonly limit: number }
): ReadonlyArray<Archived> => {
  const dead = [...archive.values()]
    .filter((row) => row.queueId === queueId && row.dead)
    .sort((a, b) => a.id - b.id)
  const wanted = selection.ids === undefined ? undefined : new Set(selection.ids)
  return wanted === undefined ? dead.slice(0, selection.limit) : dead.filter((row) => wanted.has(row.id))
}

/** What these operations use of the memory store's state. */
export interface State {
  readonly queues: ReadonlyMap<string, QueueStore.QueueRow>
  readonly messages: ReadonlyMap<number, Message>
  readonly archive: Map<number, Archived>
  readonly signal: (name: string, wakeup?: QueueStore.Wakeup) => Effect.Effect<void>
  readonly toArchive: (
    message: Message,
    dead: boolean,
    now: number,
    error: string | null,
    fallback: string | null,
    cancelled?: boolean
  ) => void
}

/** The operations over `state`. */
export const make = ({
  queues,
  messages,
  archive,
  signal,
  toArchive
}: State): Pick<
  QueueStore.Store,
  "cancel" | "update" | "getMessage" | "listMessages" | "deleteDead" | "setProgress" | "lostLeases"
> => ({
  cancel: (name, id, now) =>
    Effect.suspend(() => {
      const queue = queues.get(name)
      if (queue === undefined) return Effect.succeed(undefined)
      const message = messages.get(id)
      if (message === undefined || message.queueId !== queue.id) return Effect.succeed("missing" as const)
      const wasLeased = leased(message, now)
      toArchive(message, false, now, null, null, true)
      return wasLeased
        ? Effect.as(signal(name, "cancel"), "cancelledLeased" as const)
        : Effect.succeed("cancelled" as const)
    }),

  update: (name, id, change, now) =>
    Effect.suspend(() => {
      const queue = queues.get(name)
      if (queue === undefined) return Effect.succeed(undefined)
      const message = messages.get(id)
      if (message === undefined || message.queueId !== queue.id) return Effect.succeed("missing" as const)
      if (leased(message, now)) return Effect.succeed("leased" as const)
      if (change.priority !== undefined) message.priority = change.priority
      if (change.availableAt !== undefined) message.availableAt = change.availableAt
      return change.availableAt !== undefined && change.availableAt <= now
        ? Effect.as(signal(name), "updated" as const)
        : Effect.succeed("updated" as const)
    }),

  getMessage: (name, id, now) =>
    Effect.sync(() => {
      const queue = queues.get(name)
      if (queue === undefined) return undefined
      const message = messages.get(id)
      if (message === undefined || message.queueId !== queue.id) return "missing" as const
      return toRow(message, queue, now)
    }),

  listMessages: (name, query) =>
    Effect.sync(() => {
      const queue = queues.get(name)
      if (queue === undefined) return undefined
      const { now } = query
      const inState = (message: Message) =>
        query.state === "queued"
          ? message.availableAt <= now
          : message.availableAt > now && (message.leaseToken === null) === (query.state === "delayed")
      return [...messages.values()]
        .filter((message) => message.queueId === queue.id && message.id > query.after && inState(message))
        .sort((a, b) => a.id - b.id)
        .slice(0, query.limit)
        .map((message) => toRow(message, queue, now))
    }),

  deleteDead: (name, selection) =>
    Effect.sync(() => {
      const queue = queues.get(name)
      if (queue === undefined) return undefined
      const chosen = chooseDead(archive, queue.id, selection)
      for (const row of chosen) archive.delete(row.id)
      return chosen.map((row) => row.id)
    }),

  setProgress: (name, lease, progress) =>
    Effect.sync(() => {
      const queue = queues.get(name)
      if (queue === undefined) return undefined
      const message = messages.get(lease.id)
      if (message === undefined || message.queueId !== queue.id || message.leaseToken !== lease.lease)
        return "lost" as const
      message.progress = progress
      return "set" as const
    }),

  lostLeases: (name, leases) =>
    Effect.sync(() => {
      const queue = queues.get(name)
      if (queue === undefined) return undefined
      const lost = leases.filter((lease) => {
        const message = messages.get(lease.id)
        return message === undefined || message.queueId !== queue.id || message.leaseToken !== lease.lease
      })
      return [...new Set(lost.map((lease) => lease.id))]
    })
})
