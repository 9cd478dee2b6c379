/**
 * The read routes the dashboard (`/ui`) needs beyond the others: one overview of every queue (its
 * counts now, send and acknowledge rates, its depth over the last hour), the counts of workers,
 * reservations and cursors, and the registered workers with their heartbeat age. Nothing here
 * writes; the dashboard's actions use the queue, reservation and cursor routes.
 */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schemas from "@keel/queue/Schemas"
import * as Schema from "effect/Schema"
import { CursorErrors, QueueErrors, ReservationErrors } from "./ApiErrors.js"

/** One sample of a queue's depth (visible messages) at `at` (epoch milliseconds). */
export const DepthSample = Schema.Struct({ at: Schema.Number, depth: Schema.Int })

/** A queue as the overview shows it: its counts now, its rates and its recent depth. */
export const QueueOverview = Schema.Struct({
  queue: Schema.String,
  /** Visible now: ready to be read. */
  depth: Schema.Int,
  delayed: Schema.Int,
  inFlight: Schema.Int,
  dead: Schema.Int,
  archived: Schema.Int,
  oldestMessageAgeMs: Schema.NullOr(Schema.Number),
  /**
   * Messages sent through this server per minute, over the last sampled minutes; null until two
   * samples exist. Sends of other processes are not counted (they do not pass through here).
   */
  sendRate: Schema.NullOr(Schema.Number),
  /** Messages acknowledged (deleted or archived) through this server per minute; null as `sendRate`. */
  ackRate: Schema.NullOr(Schema.Number),
  /** The depth sampled over the last hour, oldest first, ending with the count now. */
  history: Schema.Array(DepthSample)
})

/** `GET /dashboard/overview`. */
export const Overview = Schema.Struct({
  queues: Schema.Array(QueueOverview),
  /** Registered workers whose heartbeat is recent, and those whose heartbeat is stale. */
  workers: Schema.Struct({ alive: Schema.Int, stale: Schema.Int }),
  /** Port reservations held. */
  reservations: Schema.Int,
  /** Cursors of the server's namespace, and how many wait for a flush. */
  cursors: Schema.Struct({ namespace: Schema.String, count: Schema.Int, pending: Schema.Int }),
  /** When the counts were taken (epoch milliseconds). */
  measuredAt: Schema.Number
})

/** A registered worker with its heartbeat age; `stale` past its own worker timeout. */
export const WorkerStatus = Schema.Struct({
  ...Schemas.Worker.fields,
  heartbeatAgeMs: Schema.Number,
  stale: Schema.Boolean
})

/** `{ workers }`: every registered worker, by id. */
export const WorkerList = Schema.Struct({ workers: Schema.Array(WorkerStatus) })

/** The dashboard's read routes. */
export const DashboardGroup = HttpApiGroup.make("dashboard")
  .add(
    HttpApiEndpoint.get("overview", "/dashboard/overview")
      .addSuccess(Overview)
      .addError(QueueErrors.QueueStoreError)
      .addError(ReservationErrors.ReservationStoreError)
      .addError(CursorErrors.CursorStoreError)
      .annotate(
        OpenApi.Summary,
        "Every queue's counts, rates and last hour of depth; workers, reservations and cursors counted"
      )
  )
  .add(
    HttpApiEndpoint.get("workers", "/workers")
      .addSuccess(WorkerList)
      .addError(QueueErrors.QueueStoreError)
      .annotate(OpenApi.Summary, "Registered workers with their heartbeat age (stale ones marked)")
  )
  .annotate(OpenApi.Description, "What the dashboard at /ui shows")
