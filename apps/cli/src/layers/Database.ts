/**
 * The database a command opens: the DSN from the merged global options (`--db`, `KEEL_DB`, the
 * default file), and its layer.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as KeelDatabase from "@keel/server/KeelDatabase"
import type { Backend, Database } from "@keel/sql"
import type { ConfigError, Redacted } from "effect"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Globals from "../GlobalOptions.js"

/** The DSN in force: `--db`, else `KEEL_DB`, else the default file in the user's data directory. */
export const dsn: Effect.Effect<
  Redacted.Redacted<string>,
  ConfigError.ConfigError,
  Globals.Globals
> = Effect.flatMap(Globals.Globals, (globals) => KeelDatabase.resolveDsn(globals.db))

/** The database named by the global options. */
export const database: Layer.Layer<
  SqlClient.SqlClient | Backend.Backend,
  Database.OpenError | ConfigError.ConfigError,
  Globals.Globals
> = Layer.unwrapEffect(Effect.map(dsn, (resolved) => KeelDatabase.database(resolved)))
