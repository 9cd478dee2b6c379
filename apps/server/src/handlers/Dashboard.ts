/**
 * The `dashboard` routes: the overview (every queue's counts now with its rates and last hour of
 * depth from `DepthHistory`; workers, reservations and cursors counted) and the worker list with
 * heartbeat ages. Reads only.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as Cursor from "@keel/cursor/Cursor"
import type { Schemas } from "@keel/queue"
import * as Queue from "@keel/queue/Queue"
import * as Reservation from "@keel/reservation/Reservation"
import * as Clock from "effect/Clock"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { KeelApi } from "../Api.js"
import * as DepthHistory from "../DepthHistory.js"

/** A worker with its heartbeat age at `now` (epoch ms), marked stale past its own worker timeout. */
export const statusOf = (worker: Schemas.Worker, now: number) => {
  const heartbeatAgeMs = Math.max(0, now - DateTime.toEpochMillis(worker.heartbeatAt))
  return { ...worker, heartbeatAgeMs, stale: heartbeatAgeMs > Duration.toMillis(worker.timeout) }
}

/** The `dashboard` group. */
export const layer = HttpApiBuilder.group(KeelApi, "dashboard", (handlers) =>
  Effect.gen(function* () {
    const queue = yield* Queue.Queues
    const reservations = yield* Reservation.Reservations
    const cursors = yield* Cursor.Cursors
    const history = yield* DepthHistory.DepthHistory
    const overviewOf = (metrics: Schemas.QueueMetrics, at: number) =>
      Effect.gen(function* () {
        const samples = yield* history.of(metrics.queue)
        const now = { at, depth: metrics.depth, ...(yield* DepthHistory.counters(metrics.queue)) }
        return {
          queue: metrics.queue,
          depth: metrics.depth,
          delayed: metrics.delayed,
          inFlight: metrics.inFlight,
          dead: metrics.dead,
          archived: metrics.archived,
          oldestMessageAgeMs: metrics.oldestMessageAgeMs,
          sendRate: DepthHistory.perMinute(samples, now, (sample) => sample.sent),
          ackRate: DepthHistory.perMinute(samples, now, (sample) => sample.acknowledged),
          history: DepthHistory.upTo(samples, now).map((sample) => ({ at: sample.at, depth: sample.depth }))
        }
      })
    return handlers
      .handle("overview", () =>
        Effect.gen(function* () {
          const all = yield* queue.metricsAll
          // Read after the counts, so that "now" is no older than what it shows.
          const at = yield* Clock.currentTimeMillis
          const queues = yield* Effect.forEach(all, (metrics) => overviewOf(metrics, at))
          const workers = (yield* queue.listWorkers()).map((worker) => statusOf(worker, at))
          // Without filters neither list can be refused; only a store failure remains (503).
          const held = yield* reservations
            .list()
            .pipe(
              Effect.catchTags({ InvalidPath: Effect.die, InvalidTag: Effect.die, InvalidLabel: Effect.die })
            )
          const stored = yield* cursors.getAll
          const stale = workers.filter((worker) => worker.stale).length
          return {
            queues,
            workers: { alive: workers.length - stale, stale },
            reservations: held.length,
            cursors: {
              namespace: cursors.namespace,
              count: stored.length,
              pending: stored.filter((cursor) => cursor.pending).length
            },
            measuredAt: at
          }
        }).pipe(Effect.catchTag("InvalidQueueName", Effect.die))
      )
      .handle("workers", () =>
        Effect.gen(function* () {
          const at = yield* Clock.currentTimeMillis
          const workers = yield* queue.listWorkers()
          return { workers: workers.map((worker) => statusOf(worker, at)) }
        }).pipe(
          // Without a queue name the list cannot be refused; only a store failure remains (503).
          Effect.catchTag("InvalidQueueName", Effect.die)
        )
      )
  })
)
