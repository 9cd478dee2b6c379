/**
 * Workers and maintenance: a registered worker heartbeats while its scope lasts and deregisters
 * (releasing its leases) when it closes; a maintenance pass deregisters stale workers (so their
 * leases come back before their visibility timeout) and purges what retention allows.
 */
import { randomUUID } from "node:crypto"
import { hostname } from "node:os"
import type { Scope } from "effect"
import * as Clock from "effect/Clock"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { type RegisteredWorker, WorkerOptions } from "../Options.js"
import {
  InvalidOption,
  type InvalidQueueName,
  QueueNotFound,
  type QueueStoreError,
  WorkerIdInUse
} from "../QueueError.js"
import type * as QueueStore from "../QueueStore.js"
import {
  type Lease,
  MaintenanceReport,
  parseQueueName,
  type QueueName,
  QueueName as QueueNameSchema,
  Worker
} from "../Schemas.js"
import { decoder } from "./optionSchema.js"

const decodeWorkerOptions = decoder(WorkerOptions)

/** The most archived messages (and keys) one maintenance pass purges; later passes take the rest. */
const maintenanceBatch = 10_000

/** Workers and maintenance over `store`. */
export const make = (store: QueueStore.Store) => {
  const registerWorker = (
    options: WorkerOptions = {}
  ): Effect.Effect<
    RegisteredWorker,
    InvalidQueueName | QueueNotFound | InvalidOption | WorkerIdInUse | QueueStoreError,
    Scope.Scope
  > =>
    Effect.gen(function* () {
      const checked = yield* decodeWorkerOptions(options)
      const id = checked.workerId ?? randomUUID()
      const queue = checked.queue === undefined ? undefined : yield* parseQueueName(checked.queue)
      const heartbeatMs = checked.heartbeatInterval ?? 5_000
      const timeoutMs = checked.workerTimeout ?? Math.max(30_000, heartbeatMs * 3)
      if (timeoutMs <= heartbeatMs) {
        return yield* new InvalidOption({
          option: "workerTimeout",
          value: `${timeoutMs} ms`,
          expected: `longer than heartbeatInterval (${heartbeatMs} ms)`
        })
      }
      const host = hostname()
      const entry = (now: number): QueueStore.WorkerEntry => ({
        id,
        queue: queue ?? null,
        host,
        pid: process.pid,
        timeoutMs,
        now
      })
      const register = Effect.flatMap(Clock.currentTimeMillis, (now) =>
        store.registerWorker(entry(now))
      ).pipe(
        Effect.flatMap((registered): Effect.Effect<void, WorkerIdInUse | QueueNotFound> => {
          if (registered === "inUse") return Effect.fail(new WorkerIdInUse({ workerId: id }))
          if (registered === "queueMissing" && queue !== undefined)
            return Effect.fail(new QueueNotFound({ queue }))
          return Effect.void
        })
      )
      const deregister = Effect.flatMap(Clock.currentTimeMillis, (now) =>
        store.deregisterWorker(id, now)
      ).pipe(
        Effect.catchAll((error) => Effect.logWarning(`deregistering worker ${id} failed`, error.message))
      )
      yield* Effect.acquireRelease(register, () => deregister)
      const beat = Effect.flatMap(Clock.currentTimeMillis, (now) => store.heartbeat(entry(now))).pipe(
        Effect.tap((rejoined) =>
          rejoined ? Effect.logWarning(`worker ${id} was declared stale and re-registered`) : Effect.void
        ),
        Effect.catchAll((error) => Effect.logWarning(`heartbeat of worker ${id} failed`, error.message))
      )
      yield* Effect.forkScoped(
        Effect.repeat(Effect.zipRight(Effect.sleep(Duration.millis(heartbeatMs)), beat), Schedule.forever)
      )
      return { id, queue: queue ?? null }
    })

  const listWorkers = (queue?: string) =>
    Effect.gen(function* () {
      const valid = queue === undefined ? undefined : yield* parseQueueName(queue)
      const rows = yield* store.listWorkers(valid, yield* Clock.currentTimeMillis)
      return rows.map(
        (row) =>
          new Worker(
            {
              id: row.id,
              queue: row.queue === null ? null : QueueNameSchema.make(row.queue, true),
              host: row.host,
              pid: row.pid,
              startedAt: DateTime.unsafeMake(row.startedAt),
              heartbeatAt: DateTime.unsafeMake(row.heartbeatAt),
              timeout: Duration.millis(row.timeoutMs),
              inFlight: row.inFlight
            },
            true
          )
      )
    })

  const maintain = Effect.flatMap(Clock.currentTimeMillis, (now) =>
    store.maintain(now, maintenanceBatch)
  ).pipe(Effect.map((report) => new MaintenanceReport(report)))

  /** Signals that `queue` has messages to read; `QueueNotFound` when it does not exist. */
  const wakeups = (queue: QueueName) =>
    Effect.flatMap(store.wakeups(queue), (stream) =>
      stream === undefined ? Effect.fail(new QueueNotFound({ queue })) : Effect.succeed(stream)
    )

  /** Of `leases`, the ids no longer held; `QueueNotFound` when the queue is gone. */
  const lostLeases = (queue: QueueName, leases: ReadonlyArray<Lease>) =>
    Effect.flatMap(store.lostLeases(queue, leases), (lost) =>
      lost === undefined ? Effect.fail(new QueueNotFound({ queue })) : Effect.succeed(lost)
    )

  return { registerWorker, listWorkers, maintain, wakeups, lostLeases }
}
