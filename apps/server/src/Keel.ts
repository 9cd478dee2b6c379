/**
 * How the apps put Keel together: one database (from `--db`, `KEEL_DB`, or the default file in
 * the user's data directory) and the three services over it. The CLI builds only the services a
 * subcommand needs (cold start matters for `keel port reserve`); the server builds all three.
 */
import * as Cursor from "@keel/cursor/Cursor"
import * as Queue from "@keel/queue/Queue"
import * as Schedule from "@keel/queue/Schedule"
import * as Reservation from "@keel/reservation/Reservation"
import type { ConfigError } from "effect"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

export { database, defaultDatabaseFile, describe, resolveDsn } from "./KeelDatabase.js"

/** The queue service, configured from `KEEL_QUEUE_*`. */
export const queue = Queue.layerConfig

/** The schedules (cron and interval messages) over the queue in context. */
export const schedules = Schedule.layer

/** The reservation registry, configured from the file `KEEL_RESERVATION_CONFIG` names. */
export const reservations = Reservation.layerConfig

/** The cursor store, configured from `KEEL_CURSOR_*`; its release flushes and checkpoints. */
export const cursors = Cursor.layerConfig

/**
 * The scheduler (`Schedule.layerRunner`), unless `KEEL_SCHEDULER=false`: due ticks are enqueued
 * while the process runs (any number of processes may run it at once; each tick fires once).
 */
export const scheduler: Layer.Layer<never, ConfigError.ConfigError, Schedule.Schedules> = Layer.unwrapEffect(
  Effect.map(
    Config.withDefault(Config.boolean("KEEL_SCHEDULER"), true),
    (enabled): Layer.Layer<never, never, Schedule.Schedules> =>
      enabled ? Schedule.layerRunner() : Layer.empty
  )
)

/** The services over the database in context: queues (with schedules), reservations, cursors. */
export const services = Layer.mergeAll(
  Layer.provideMerge(Layer.provideMerge(scheduler, schedules), queue),
  reservations,
  cursors
)
