/**
 * The layers a command provides for itself, so each opens only what it uses: `keel port reserve`
 * builds the database and the reservation registry, nothing else, and `--help` builds nothing.
 * Every layer reads the DSN from the merged global options (`--db`, `KEEL_DB`, the default file).
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import { Cursor } from "@keel/cursor"
import type { Queue, Schedule } from "@keel/queue"
import type { Reservation } from "@keel/reservation"
import * as Keel from "@keel/server/Keel"
import type { Backend, Database } from "@keel/sql"
import { type ConfigError, Effect, Layer, Option, type Redacted } from "effect"
import * as Globals from "./Globals.js"

/** The DSN in force: `--db`, else `KEEL_DB`, else the default file in the user's data directory. */
export const dsn: Effect.Effect<
  Redacted.Redacted<string>,
  ConfigError.ConfigError,
  Globals.Globals
> = Effect.flatMap(Globals.Globals, (globals) => Keel.resolveDsn(globals.db))

/** The database named by the global options. */
export const database: Layer.Layer<
  SqlClient.SqlClient | Backend.Backend,
  Database.OpenError | ConfigError.ConfigError,
  Globals.Globals
> = Layer.unwrapEffect(Effect.map(dsn, (resolved) => Keel.database(resolved)))

/** The reservation registry (config from `KEEL_RESERVATION_CONFIG`) over the database. */
export const reservations: Layer.Layer<
  Reservation.Reservations,
  Layer.Layer.Error<typeof Keel.reservations> | Layer.Layer.Error<typeof database>,
  Globals.Globals
> = Layer.provide(Keel.reservations, database)

/**
 * The queue service (config from `KEEL_QUEUE_*`) and the database under it, so a command can put
 * several of the queue's writes in one transaction (`Retry.transaction`): they join it.
 */
export const queue: Layer.Layer<
  Queue.Queue | SqlClient.SqlClient | Backend.Backend,
  Layer.Layer.Error<typeof Keel.queue> | Layer.Layer.Error<typeof database>,
  Globals.Globals
> = Layer.provideMerge(Keel.queue, database)

/** The schedules over the queue service and the database. */
export const schedules: Layer.Layer<
  Schedule.Schedules | Queue.Queue,
  Layer.Layer.Error<typeof Keel.schedules> | Layer.Layer.Error<typeof queue>,
  Globals.Globals
> = Layer.provideMerge(Keel.schedules, queue)

/**
 * The cursor store (config from `KEEL_CURSOR_*`) over the database; `namespace`, when given,
 * replaces `KEEL_CURSOR_NAMESPACE`. Its release flushes and checkpoints.
 */
export const cursors = (
  namespace: Option.Option<string>
): Layer.Layer<
  Cursor.CursorStore,
  Layer.Layer.Error<typeof Keel.cursors> | Layer.Layer.Error<typeof database>,
  Globals.Globals
> =>
  Layer.provide(
    Option.match(namespace, {
      onNone: () => Keel.cursors,
      onSome: (name) =>
        Layer.unwrapEffect(
          Effect.map(Cursor.config, (config) => Cursor.layer({ ...config, namespace: name }))
        )
    }),
    database
  )
