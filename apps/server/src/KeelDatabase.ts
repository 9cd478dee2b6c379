/**
 * The database the apps use: the DSN from `--db`, `KEEL_DB`, or the default file in the user's
 * data directory, and its layer. Apart from `Keel.ts` (which re-exports it) so that a program that
 * needs only the database and one service does not load the others (the CLI's fast path).
 */
import { mkdirSync } from "node:fs"
import { homedir } from "node:os"
import { dirname, join } from "node:path"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { Backend } from "@keel/sql"
import * as Database from "@keel/sql/Database"
import * as Dsn from "@keel/sql/Dsn"
import type { ConfigError } from "effect"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"

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
