/**
 * How the apps put Keel together: one database (from `--db`, `KEEL_DB`, or the default file in
 * the user's data directory) and the three services over it. The CLI builds only the services a
 * subcommand needs (cold start matters for `keel port reserve`); the server builds all three.
 */
import { mkdirSync } from "node:fs"
import { homedir } from "node:os"
import { dirname, join } from "node:path"
import type * as SqlClient from "@effect/sql/SqlClient"
import { Cursor } from "@keel/cursor"
import { Queue, Schedule } from "@keel/queue"
import { Reservation } from "@keel/reservation"
import { type Backend, Database, Dsn } from "@keel/sql"
import { Config, type ConfigError, Effect, Layer, Option, Redacted } from "effect"

/**
 * The database file used when no DSN is configured: `$XDG_DATA_HOME/keel/keel.db`, that is
 * `~/.local/share/keel/keel.db` by default — one registry per user, shared by every project,
 * the CLI and the server.
 */
export const defaultDatabaseFile = (): string =>
  join(process.env.XDG_DATA_HOME || join(homedir(), ".local", "share"), "keel", "keel.db")

/** The DSN to use: the given one, else `KEEL_DB`, else the default file (its directory is created). */
export const resolveDsn = (
  given: Option.Option<Redacted.Redacted<string>> = Option.none()
): Effect.Effect<Redacted.Redacted<string>, ConfigError.ConfigError> =>
  Effect.gen(function* () {
    if (Option.isSome(given)) return given.value
    const configured = yield* Config.option(Config.redacted("KEEL_DB"))
    if (Option.isSome(configured)) return configured.value
    const file = defaultDatabaseFile()
    yield* Effect.sync(() => mkdirSync(dirname(file), { recursive: true }))
    return Redacted.make(`sqlite:${file}`)
  })

/** The database layer for a DSN (secrets stay redacted in every error and log line). */
export const database = (
  dsn: Redacted.Redacted<string>,
  options: Database.Options = {}
): Layer.Layer<SqlClient.SqlClient | Backend.Backend, Database.OpenError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(
    Effect.map(Config.option(Config.redacted("LIBSQL_AUTH_TOKEN")), (authToken) =>
      Database.layer(Redacted.value(dsn), { ...options, authToken: Option.getOrUndefined(authToken) })
    )
  )

/** The printable form of a DSN, for "listening on … using …" lines. */
export const describe = (dsn: Redacted.Redacted<string>): string => Dsn.redact(Redacted.value(dsn))

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
