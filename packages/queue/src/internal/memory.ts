/**
 * The queue's store in memory: the same operations and outcomes as `SqlQueueStore`, for tests of
 * the semantics (consumers, the CLI, the HTTP API) that need no database, and for a process that
 * only needs a queue between its own fibers. Nothing survives the process.
 *
 * The state is plain maps owned by the store; every operation reads and changes it inside one
 * synchronous step (`Effect.sync`), so each is atomic, as a transaction is on SQL.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Stream from "effect/Stream"
import type * as QueueStore from "../QueueStore.js"
import { exhaustedError } from "../Schemas.js"
import { throttledUntil } from "./limits.js"
import * as MemoryEvents from "./memoryEvents.js"
import * as MemoryLimits from "./memoryLimits.js"
import * as MemoryMessages from "./memoryMessages.js"
import { type Archived, chooseDead, leased, type Message } from "./memoryMessages.js"

interface Worker {
  readonly id: string
  queueId: number | null
  host: string
  pid: number
  startedAt: number
  heartbeatAt: number
  timeoutMs: number
}

const byDelivery = (a: Message, b: Message) =>
  a.priority - b.priority || a.availableAt - b.availableAt || a.id - b.id

/** A store in memory (empty). */
export const make: Effect.Effect<QueueStore.Store> = Effect.map(
  PubSub.unbounded<{ readonly name: string; readonly wakeup: QueueStore.Wakeup }>(),
  (signals) => {
    const queues = new Map<string, QueueStore.QueueRow>()
    const messages = new Map<number, Message>()
    const archive = new Map<number, Archived>()
    const keys = new Map<
      string,
      { readonly messageId: number; readonly createdAt: number; readonly expiresAt: number | null }
    >()
    const workers = new Map<string, Worker>()
    // Each rate-limited queue's current window (start, leases counted in it).
    const windows = new Map<number, { readonly start: number; readonly count: number }>()
    let lastQueueId = 0
    let lastMessageId = 0
    const events = MemoryEvents.make(queues)

    const signal = (name: string, wakeup: QueueStore.Wakeup = "send") =>
      Effect.asVoid(PubSub.publish(signals, { name, wakeup }))
    const keyOf = (queueId: number, key: string) => `${queueId}\u0000${key}`
    const ofQueue = (queueId: number) =>
      [...messages.values()].filter((message) => message.queueId === queueId)

    const toArchive = (
      message: Message,
      dead: boolean,
      now: number,
      error: string | null,
      fallback: string | null,
      cancelled = false
    ) => {
      messages.delete(message.id)
      events.record(
        message.queueId,
        message.id,
        cancelled ? "cancelled" : dead ? "dead" : "acknowledged",
        now,
        dead ? (error ?? message.lastError ?? fallback) : null
      )
      archive.set(message.id, {
        id: message.id,
        queueId: message.queueId,
        payload: message.payload,
        priority: message.priority,
        deliveries: message.deliveries,
        enqueuedAt: message.enqueuedAt,
        archivedAt: now,
        dead,
        cancelled,
        lastError: error ?? message.lastError ?? fallback,
        maxDeliveries: message.maxDeliveries,
        backoff: message.backoff,
        group: message.group
      })
    }

    const releaseLeasesOf = (workerId: string, now: number): number => {
      let released = 0
      for (const message of messages.values()) {
        if (message.leasedBy === workerId && message.leaseToken !== null) {
          events.record(message.queueId, message.id, "released", now, message.lastError)
          message.leaseToken = null
          message.leasedBy = null
          message.availableAt = Math.min(message.availableAt, now)
          released++
        }
      }
      return released
    }

    const register = (worker: QueueStore.WorkerEntry, queueId: number | null) =>
      workers.set(worker.id, {
        id: worker.id,
        queueId,
        host: worker.host,
        pid: worker.pid,
        startedAt: worker.now,
        heartbeatAt: worker.now,
        timeoutMs: worker.timeoutMs
      })

    const store: QueueStore.Store = {
      createQueue: (name, settings, now) =>
        Effect.sync(() => {
          const existing = queues.get(name)
          if (existing !== undefined) return { queue: existing, created: false }
          const queue = { id: ++lastQueueId, name, ...settings, createdAt: now, updatedAt: now }
          queues.set(name, queue)
          return { queue, created: true }
        }),
      findQueue: (name) => Effect.sync(() => queues.get(name)),
      listQueues: Effect.sync(() => [...queues.values()].sort((a, b) => (a.name < b.name ? -1 : 1))),
      updateQueue: (name, changes, now) =>
        Effect.sync(() => {
          const queue = queues.get(name)
          if (queue === undefined) return undefined
          const defined = Object.fromEntries(
            Object.entries(changes).filter(([, value]) => value !== undefined)
          )
          const updated = { ...queue, ...defined, updatedAt: now }
          // A new (or removed) rate limit starts counting afresh.
          if (changes.rateLimit !== undefined) windows.delete(queue.id)
          queues.set(name, updated)
          return updated
        }),
      deleteQueue: (name, options) =>
        Effect.sync((): QueueStore.Deleted | undefined => {
          const queue = queues.get(name)
          if (queue === undefined) return undefined
          const held = ofQueue(queue.id)
          const inFlight = held.filter((m) => leased(m, options.now)).length
          if (!options.force && inFlight > 0) return { _tag: "InFlight", inFlight }
          const archived = [...archive.values()].filter((row) => row.queueId === queue.id)
          for (const message of held) messages.delete(message.id)
          for (const row of archived) archive.delete(row.id)
          for (const key of [...keys.keys()]) if (key.startsWith(`${queue.id}\u0000`)) keys.delete(key)
          for (const worker of workers.values()) if (worker.queueId === queue.id) workers.delete(worker.id)
          queues.delete(name)
          return { _tag: "Deleted", messages: held.length, archived: archived.length }
        }),
      purgeQueue: (name, options) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const queue = queues.get(name)
          if (queue === undefined) return undefined
          const held = ofQueue(queue.id)
          for (const message of held) {
            messages.delete(message.id)
            events.record(queue.id, message.id, "deleted", now)
          }
          const archived = options.archive
            ? [...archive.values()].filter((row) => row.queueId === queue.id)
            : []
          for (const row of archived) archive.delete(row.id)
          return { messages: held.length, archived: archived.length }
        }),

      send: (name, outgoing, now) =>
        Effect.suspend(() => {
          const queue = queues.get(name)
          if (queue === undefined) return Effect.succeed(undefined)
          // As the SQL store: messages apply in order; a held key follows the message's mode.
          const ids = outgoing.map((message) => {
            const key = message.dedupKey === undefined ? undefined : keyOf(queue.id, message.dedupKey)
            const known = key === undefined ? undefined : keys.get(key)
            const live = known !== undefined && (known.expiresAt === null || known.expiresAt > now)
            if (known !== undefined && live) {
              if (message.dedupMode === "ignore") return known.messageId
              const held = messages.get(known.messageId)
              if (held !== undefined && !leased(held, now)) {
                held.payload = message.payload
                held.priority = message.priority
                held.maxDeliveries = message.maxDeliveries ?? null
                held.backoff = message.backoff ?? null
                held.group = message.group ?? null
                held.trace = message.trace ?? null
                if (message.dedupMode === "debounce") held.availableAt = now + message.delayMs
                held.deliveries = 0
                held.leaseToken = null
                held.leasedBy = null
                held.lastError = null
                return held.id
              }
            }
            const id = ++lastMessageId
            messages.set(id, {
              id,
              queueId: queue.id,
              payload: message.payload,
              priority: message.priority,
              enqueuedAt: now,
              availableAt: now + message.delayMs,
              deliveries: 0,
              leaseToken: null,
              leasedBy: null,
              lastError: null,
              maxDeliveries: message.maxDeliveries ?? null,
              backoff: message.backoff ?? null,
              group: message.group ?? null,
              trace: message.trace ?? null
            })
            events.record(queue.id, id, "sent", now)
            if (key !== undefined) {
              const window = message.dedupWindowMs
              keys.set(key, {
                messageId: id,
                createdAt: now,
                expiresAt: window === undefined ? null : now + window
              })
            }
            return id
          })
          return Effect.as(signal(name), { queueId: queue.id, ids })
        }),

      lease: (name, request) =>
        Effect.sync(() => {
          const queue = queues.get(name)
          if (queue === undefined) return undefined
          const { now } = request
          const until = now + (request.visibilityMs ?? queue.visibilityTimeoutMs)
          const queued = ofQueue(queue.id)
          const free = MemoryLimits.groupRule(queue, queued, archive.values())
          const visible = queued.filter((message) => message.availableAt <= now && free(message))
          if (visible.length === 0) return { leased: [], dead: 0 }
          visible.sort(byDelivery)
          const budget = MemoryLimits.budget(queue, queued, request.qty, now, windows.get(queue.id))
          if (budget.qty === 0) return { leased: [], dead: 0, throttledUntil: throttledUntil(budget, 0) }
          const leased: Array<QueueStore.LeasedRow> = []
          let dead = 0
          for (const message of visible) {
            if (leased.length >= budget.qty) break
            const allowed = message.maxDeliveries ?? queue.maxDeliveries
            if (message.deliveries >= allowed) {
              toArchive(message, true, now, null, exhaustedError(allowed))
              dead++
              continue
            }
            const lastError = message.lastError
            message.leaseToken = request.token
            message.leasedBy = request.workerId
            message.availableAt = until
            message.deliveries++
            events.record(queue.id, message.id, "leased", now)
            leased.push({
              id: message.id,
              payload: message.payload,
              priority: message.priority,
              enqueuedAt: message.enqueuedAt,
              deliveries: message.deliveries,
              visibleAt: until,
              lastError,
              maxDeliveries: allowed,
              backoff: message.backoff,
              group: message.group,
              trace: message.trace ?? null
            })
          }
          if (budget.window !== undefined && leased.length > 0) {
            windows.set(queue.id, { start: budget.window.start, count: budget.window.used + leased.length })
          }
          return { leased, dead, throttledUntil: throttledUntil(budget, leased.length) }
        }),

      settle: (name, request) =>
        Effect.suspend(() => {
          const queue = queues.get(name)
          if (queue === undefined) return Effect.succeed(undefined)
          const { now, settlement } = request
          const held = (lease: QueueStore.HeldLease) => {
            const message = messages.get(lease.id)
            return message !== undefined && message.queueId === queue.id && message.leaseToken === lease.lease
              ? message
              : undefined
          }
          const lost = [
            ...new Set(request.leases.filter((lease) => held(lease) === undefined).map((l) => l.id))
          ]
          const settled = { queueId: queue.id, lost, dead: [] as Array<number>, visibleAt: now }
          if (request.atomic && lost.length > 0) return Effect.succeed(settled)
          const acted = [
            ...new Set(request.leases.flatMap((lease) => Option.toArray(Option.fromNullable(held(lease)))))
          ]
          let wake = false
          for (const message of acted) {
            switch (settlement._tag) {
              case "Delete":
                messages.delete(message.id)
                events.record(queue.id, message.id, "deleted", now)
                break
              case "Archive":
                toArchive(message, false, now, null, null)
                break
              case "Extend":
                settled.visibleAt = now + (settlement.visibilityMs ?? queue.visibilityTimeoutMs)
                message.availableAt = settled.visibleAt
                break
              case "Release":
                if (
                  settlement.error !== null &&
                  message.deliveries >= (message.maxDeliveries ?? queue.maxDeliveries)
                ) {
                  toArchive(message, true, now, settlement.error, null)
                  settled.dead.push(message.id)
                } else {
                  message.leaseToken = null
                  message.leasedBy = null
                  message.availableAt = now + settlement.delayMs
                  if (settlement.error !== null) message.lastError = settlement.error
                  events.record(queue.id, message.id, "released", now, message.lastError)
                  wake ||= settlement.delayMs === 0
                }
            }
          }
          return Effect.as(wake ? signal(name) : Effect.void, settled)
        }),

      listArchive: (name, query) =>
        Effect.sync(() => {
          const queue = queues.get(name)
          if (queue === undefined) return undefined
          return [...archive.values()]
            .filter(
              (row) =>
                row.queueId === queue.id &&
                (query.dead === undefined || row.dead === query.dead) &&
                (query.before === undefined || row.id < query.before)
            )
            .sort((a, b) => b.id - a.id)
            .slice(0, query.limit)
        }),
      requeueDead: (name, selection, now) =>
        Effect.suspend(() => {
          const queue = queues.get(name)
          if (queue === undefined) return Effect.succeed(undefined)
          const chosen = chooseDead(archive, queue.id, selection)
          for (const row of chosen) {
            archive.delete(row.id)
            messages.set(row.id, {
              id: row.id,
              queueId: queue.id,
              payload: row.payload,
              priority: row.priority,
              enqueuedAt: row.enqueuedAt,
              availableAt: now,
              deliveries: 0,
              leaseToken: null,
              leasedBy: null,
              lastError: row.lastError,
              maxDeliveries: row.maxDeliveries,
              backoff: row.backoff,
              group: row.group
            })
            events.record(queue.id, row.id, "sent", now)
          }
          const ids = chosen.map((row) => row.id)
          return Effect.as(ids.length > 0 ? signal(name) : Effect.void, ids)
        }),
      metrics: (names, now) =>
        Effect.sync(() =>
          [...queues.values()]
            .filter((queue) => names === undefined || names.includes(queue.name))
            .sort((a, b) => (a.name < b.name ? -1 : 1))
            .map((queue): QueueStore.MetricsRow => {
              const held = ofQueue(queue.id)
              const archived = [...archive.values()].filter((row) => row.queueId === queue.id)
              return {
                name: queue.name,
                depth: held.filter((m) => m.availableAt <= now).length,
                inFlight: held.filter((m) => leased(m, now)).length,
                delayed: held.filter((m) => m.availableAt > now && m.leaseToken === null).length,
                oldest: held.length === 0 ? null : Math.min(...held.map((m) => m.enqueuedAt)),
                archived: archived.filter((row) => !row.dead).length,
                dead: archived.filter((row) => row.dead).length
              }
            })
        ),

      registerWorker: (worker) =>
        Effect.sync((): QueueStore.Registered => {
          const queueId = worker.queue === null ? null : queues.get(worker.queue)?.id
          if (queueId === undefined) return "queueMissing"
          const existing = workers.get(worker.id)
          if (existing !== undefined) {
            if (existing.heartbeatAt + existing.timeoutMs >= worker.now) return "inUse"
            releaseLeasesOf(worker.id, worker.now)
          }
          register(worker, queueId)
          return "registered"
        }),
      heartbeat: (worker) =>
        Effect.sync(() => {
          const existing = workers.get(worker.id)
          if (existing !== undefined) {
            existing.heartbeatAt = worker.now
            return false
          }
          register(worker, worker.queue === null ? null : (queues.get(worker.queue)?.id ?? null))
          return true
        }),
      deregisterWorker: (id, now) =>
        Effect.sync(() => {
          releaseLeasesOf(id, now)
          workers.delete(id)
        }),
      listWorkers: (queue, now) =>
        Effect.sync(() => {
          const names = new Map([...queues.values()].map((row) => [row.id, row.name]))
          return [...workers.values()]
            .map((worker) => ({
              ...worker,
              queue: worker.queueId === null ? null : (names.get(worker.queueId) ?? null)
            }))
            .filter((worker) => queue === undefined || worker.queue === queue)
            .sort((a, b) => a.startedAt - b.startedAt || (a.id < b.id ? -1 : 1))
            .map((worker) => ({
              id: worker.id,
              queue: worker.queue,
              host: worker.host,
              pid: worker.pid,
              startedAt: worker.startedAt,
              heartbeatAt: worker.heartbeatAt,
              timeoutMs: worker.timeoutMs,
              inFlight: [...messages.values()].filter((m) => m.leasedBy === worker.id && leased(m, now))
                .length
            }))
        }),
      maintain: (now, limit) =>
        Effect.sync(() => {
          const stale = [...workers.values()].filter((worker) => worker.heartbeatAt + worker.timeoutMs < now)
          let releasedLeases = 0
          for (const worker of stale) {
            releasedLeases += releaseLeasesOf(worker.id, now)
            workers.delete(worker.id)
          }
          const retention = new Map([...queues.values()].map((queue) => [queue.id, queue.retentionMs]))
          const expired = [...archive.values()]
            .filter((row) => !row.dead && row.archivedAt < now - (retention.get(row.queueId) ?? 0))
            .slice(0, limit)
          for (const row of expired) archive.delete(row.id)
          const forgotten = [...keys.entries()]
            .filter(([key, entry]) => {
              const queueId = Number(key.slice(0, key.indexOf("\u0000")))
              if (entry.expiresAt !== null) return entry.expiresAt <= now
              return (
                entry.createdAt < now - (retention.get(queueId) ?? 0) &&
                !messages.has(entry.messageId) &&
                !archive.has(entry.messageId)
              )
            })
            .slice(0, limit)
          for (const [key] of forgotten) keys.delete(key)
          return {
            staleWorkers: stale.map((worker) => worker.id),
            releasedLeases,
            purgedArchived: expired.length,
            purgedKeys: forgotten.length,
            purgedEvents: events.purge(now, limit)
          }
        }),

      ...MemoryMessages.make({ queues, messages, archive, signal, toArchive }),
      ...events.operations,
      wakeups: (name) =>
        Effect.sync(() =>
          queues.has(name)
            ? Stream.filterMap(Stream.fromPubSub(signals), (signalled) =>
                signalled.name === name ? Option.some(signalled.wakeup) : Option.none()
              )
            : undefined
        )
    }
    return store
  }
)
