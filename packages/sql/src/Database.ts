/**
 * The one function that turns a DSN into a database: a layer providing `SqlClient` and its
 * `Backend`, with the connection set up and verified, and Keel's transaction semantics installed
 * as the client's `withTransaction`.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import type { ConfigError, Scope } from "effect"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Backend from "./Backend.js"
import { classify, type DbError, SetupFailed } from "./DbError.js"
import * as Dsn from "./Dsn.js"
import { claim, databaseFile } from "./internal/fileClaims.js"
import * as FileDiagnosis from "./internal/fileDiagnosis.js"
import type { SessionClient } from "./internal/session.js"
import {
  configureSqlite,
  configureTurso,
  connectionPragmas,
  validBusyTimeout,
  verifyPostgres
} from "./internal/setup.js"
import { withTransactionFor } from "./Transaction.js"
import type * as TursoClient from "./TursoClient.js"

// Drivers load on demand: a CLI started for an SQLite file never pays for loading pg, libSQL
// PGlite or the Turso engine (cold start matters for `keel port reserve` in shell scripts).
const drivers = {
  sqlite: Effect.promise(() => import("./internal/sqlite.js")),
  libsql: Effect.promise(() => import("./internal/libsql.js")),
  postgres: Effect.promise(() => import("./internal/postgres.js")),
  pglite: Effect.promise(() => import("./PgliteClient.js")),
  turso: Effect.promise(() => import("./TursoClient.js"))
}

/** Tuning that does not belong in a DSN. */
export interface Options {
  /** SQLite/libSQL busy_timeout. Short on purpose: better-sqlite3 waits synchronously. Default 20 ms. */
  readonly busyTimeout?: Duration.DurationInput | undefined
  /** PostgreSQL pool size. Default 10. */
  readonly maxConnections?: number | undefined
  /** libSQL auth token when the DSN carries none (usually from `LIBSQL_AUTH_TOKEN`). */
  readonly authToken?: Redacted.Redacted<string> | undefined
  /**
   * The Turso engine module for `turso:` DSNs; default `@tursodatabase/database`. For tests that
   * run Keel on another engine version (seed 000's 0.4.4); not a user setting.
   */
  readonly tursoEngine?: TursoClient.Engine | undefined
}

/** Every way opening a database can fail. */
export type OpenError = Dsn.InvalidDsn | DbError | SetupFailed

const defaultBusyTimeoutMs = 20

/**
 * The busy timeout in milliseconds, read from the raw option: `Duration` clamps a negative
 * number to zero, which would hide a configuration mistake.
 */
const busyTimeoutMs = (input: Duration.DurationInput | undefined): number => {
  if (input === undefined) return defaultBusyTimeoutMs
  if (typeof input === "number") return input
  return Option.match(Duration.decodeUnknown(input), { onNone: () => Number.NaN, onSome: Duration.toMillis })
}

type Opened = { readonly client: SqlClient.SqlClient; readonly backend: Backend.Backend }

/** A single-session backend over `session`: transactions take its one connection, BEGIN while acquiring. */
const singleSession = (
  kind: "sqlite" | "libsql" | "pglite" | "turso",
  session: SessionClient,
  dsn: Dsn.Dsn
): Effect.Effect<Opened> =>
  Effect.map(Backend.localNotifications, (notifications) => ({
    client: session.client,
    backend: Backend.make({
      kind,
      client: session.client,
      dsn: dsn.redacted,
      singleSession: true,
      openTransaction: Backend.acquireAndBegin(
        session.acquire,
        session.release,
        kind === "pglite" ? "pg" : "sqlite"
      ),
      withDriver: session.withDriver,
      driverNow: session.driverNow,
      notifications
    })
  }))

const openSqlite = (dsn: Dsn.Dsn & Dsn.Sqlite, options: Options) =>
  Effect.gen(function* () {
    const explained = <A, E>(effect: Effect.Effect<A, E | DbError, Scope.Scope | Reactivity.Reactivity>) =>
      dsn.filename === ":memory:"
        ? effect
        : Effect.mapError(effect, (error) => FileDiagnosis.explain(dsn.filename, error))
    yield* claim(databaseFile(dsn.filename), "sqlite", dsn.redacted)
    const Sqlite = yield* drivers.sqlite
    const session = yield* explained(Sqlite.make(dsn.filename))
    const client = session.client
    yield* explained(
      configureSqlite(client, dsn.redacted, {
        busyTimeoutMs: busyTimeoutMs(options.busyTimeout),
        memory: dsn.filename === ":memory:"
      })
    )
    return yield* singleSession("sqlite", session, dsn)
  })

const openLibsql = (dsn: Dsn.Dsn & Dsn.Libsql, options: Options) =>
  Effect.gen(function* () {
    if (!dsn.remote)
      yield* claim(
        databaseFile(dsn.url.replace(/^file:(\/\/)?/, "").replace(/\?.*$/, "")),
        "libsql",
        dsn.redacted
      )
    const Libsql = yield* drivers.libsql
    const authToken = dsn.authToken ?? options.authToken
    const timeout = yield* validBusyTimeout(busyTimeoutMs(options.busyTimeout), dsn.redacted)
    const opened = yield* Libsql.make({
      url: dsn.url,
      remote: dsn.remote,
      authToken,
      pragmas: connectionPragmas(timeout)
    })
    if (opened._tag === "Remote") {
      const { client, sdk } = opened
      const notifications = yield* Backend.localNotifications
      yield* Effect.mapError(client`SELECT 1`, (error) =>
        classify(error, authToken === undefined ? [] : [Redacted.value(authToken)])
      )
      return {
        client,
        backend: Backend.make({
          kind: "libsql",
          client,
          dsn: dsn.redacted,
          singleSession: false,
          openTransaction: Libsql.sdkTransaction(sdk),
          notifications
        })
      }
    }
    yield* configureSqlite(opened.session.client, dsn.redacted, {
      busyTimeoutMs: timeout,
      memory: dsn.url.includes(":memory:")
    })
    return yield* singleSession("libsql", opened.session, dsn)
  })

const openPostgres = (dsn: Dsn.Dsn & Dsn.Postgres, options: Options) =>
  Effect.gen(function* () {
    const Postgres = yield* drivers.postgres
    const client = yield* Postgres.make({
      url: dsn.url,
      maxConnections: options.maxConnections ?? 10,
      prepare: dsn.prepare
    })
    yield* verifyPostgres(client, dsn.redacted)
    return {
      client,
      backend: Backend.make({
        kind: "postgres",
        client,
        dsn: dsn.redacted,
        singleSession: false,
        openTransaction: Backend.reserveAndBegin(Postgres.interruptibleReserve(client.reserve), "pg"),
        notifications: Postgres.notifications(client)
      })
    }
  })

const openPglite = (dsn: Dsn.Dsn & Dsn.Pglite) =>
  Effect.gen(function* () {
    const PgliteClient = yield* drivers.pglite
    const { client, session } = yield* Effect.mapError(PgliteClient.make({ dataDir: dsn.dataDir }), (error) =>
      classify(error)
    )
    yield* verifyPostgres(client, dsn.redacted)
    return yield* singleSession("pglite", session, dsn)
  })

/** What opening a Turso engine file failed with: another process holding it says so plainly. */
const tursoOpenFailure = (dsn: Dsn.Dsn & Dsn.Turso, error: unknown): DbError | SetupFailed => {
  const classified = classify(error)
  if (/locked by another process/i.test(classified.message)) {
    return new SetupFailed({
      backend: dsn.redacted,
      setting: "multiprocess",
      expected:
        "a file no other process has open, or ?multiprocess=1 in every process that opens it (experimental upstream)",
      actual: "the file is locked by another process"
    })
  }
  return dsn.path === ":memory:" ? classified : FileDiagnosis.explain(dsn.path, classified)
}

/**
 * The Turso engine: one connection per opened database, a single session like SQLite's; a file
 * that better-sqlite3 or libSQL has open in this process is refused (they ignore its locks).
 */
const openTurso = (dsn: Dsn.Dsn & Dsn.Turso, options: Options) =>
  Effect.gen(function* () {
    yield* claim(databaseFile(dsn.path), "turso", dsn.redacted)
    const Turso = yield* drivers.turso
    const { session } = yield* Effect.mapError(
      Turso.make({ path: dsn.path, multiprocess: dsn.multiprocess, engine: options.tursoEngine }),
      (error) => tursoOpenFailure(dsn, error)
    )
    yield* configureTurso(session.client, dsn.redacted, { memory: dsn.path === ":memory:" })
    return yield* singleSession("turso", session, dsn)
  })

/**
 * Opens the database a parsed DSN names, sets it up and verifies it. The scope closes it.
 * The returned client's `withTransaction` is Keel's (`Transaction.immediate` semantics).
 */
export const open = (
  dsn: Dsn.Dsn,
  options: Options = {}
): Effect.Effect<Opened, DbError | SetupFailed, Scope.Scope | Reactivity.Reactivity> => {
  const opened: Effect.Effect<Opened, DbError | SetupFailed, Scope.Scope | Reactivity.Reactivity> = (() => {
    switch (dsn._tag) {
      case "Sqlite":
        return openSqlite(dsn, options)
      case "Libsql":
        return openLibsql(dsn, options)
      case "Postgres":
        return openPostgres(dsn, options)
      case "Pglite":
        return openPglite(dsn)
      case "Turso":
        return openTurso(dsn, options)
    }
  })()
  return Effect.map(opened, ({ client, backend }) => ({
    client: Object.assign(client, { withTransaction: withTransactionFor(backend) }),
    backend
  }))
}

const toContext = ({ client, backend }: Opened) =>
  Context.make(SqlClient.SqlClient, client).pipe(Context.add(Backend.Backend, backend))

/**
 * A layer providing `SqlClient` and `Backend` for `dsn` (a string is parsed with `Dsn.parse`).
 * A malformed DSN is an `InvalidDsn`; a database that cannot be opened or verified is a typed
 * `DbError` / `SetupFailed`. No error or log line carries the DSN's secrets.
 */
export const layer = (
  dsn: string | Dsn.Dsn,
  options: Options = {}
): Layer.Layer<SqlClient.SqlClient | Backend.Backend, OpenError> =>
  Layer.scopedContext(
    Effect.gen(function* () {
      const parsed =
        typeof dsn === "string"
          ? yield* Either.match(Dsn.parse(dsn, options), {
              onLeft: (error) => Effect.fail(error),
              onRight: (value) => Effect.succeed(value)
            })
          : dsn
      const opened = yield* open(parsed, options)
      yield* Effect.logDebug(`opened ${parsed.redacted}`)
      return toContext(opened)
    })
  ).pipe(Layer.provide(Reactivity.layer))

/**
 * The database named by `KEEL_DB` (read as a secret; default `./keel.db`), with
 * `LIBSQL_AUTH_TOKEN` for remote libSQL.
 */
export const dsnConfig: Config.Config<Redacted.Redacted<string>> = Config.withDefault(
  Config.redacted("KEEL_DB"),
  Redacted.make(Dsn.defaultDsn)
)

/** `layer` over `dsnConfig` and `LIBSQL_AUTH_TOKEN`. */
export const layerConfig = (
  options: Omit<Options, "authToken"> = {}
): Layer.Layer<SqlClient.SqlClient | Backend.Backend, OpenError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(
    Effect.gen(function* () {
      const dsn = yield* dsnConfig
      const authToken = yield* Config.option(Config.redacted("LIBSQL_AUTH_TOKEN"))
      return layer(Redacted.value(dsn), { ...options, authToken: Option.getOrUndefined(authToken) })
    })
  )
