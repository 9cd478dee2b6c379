/**
 * The backend matrix for tests: a fresh, isolated database per layer on each of the five
 * backends — an SQLite temp file, a libSQL `file:`, PGlite in memory, a Turso engine temp file,
 * and a new database on the PostgreSQL server (dropped afterwards). `KEEL_TEST_BACKENDS=sqlite,postgres` narrows the matrix.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Backend } from "@keel/sql"
import { Database } from "@keel/sql"
import { Context, Effect, Layer, type Scope } from "effect"
import { describe } from "vitest"

/** The backends a contract suite runs on. */
export type Kind = Backend.Kind

/** Every backend, in the order suites run. */
export const allKinds: ReadonlyArray<Kind> = ["sqlite", "libsql", "pglite", "turso", "postgres"]

const parseKinds = (value: string | undefined): ReadonlyArray<Kind> => {
  if (value === undefined || value.trim() === "" || value.trim() === "all") return allKinds
  const wanted = value.split(",").map((name) => name.trim())
  const unknown = wanted.filter((name) => !allKinds.some((kind) => kind === name))
  if (unknown.length > 0) throw new Error(`KEEL_TEST_BACKENDS: unknown backend(s) ${unknown.join(", ")}`)
  return allKinds.filter((kind) => wanted.includes(kind))
}

/** The backends selected by `KEEL_TEST_BACKENDS` (all of them when unset). */
export const kinds: ReadonlyArray<Kind> = parseKinds(process.env.KEEL_TEST_BACKENDS)

/** The PostgreSQL server tests create their databases on (`KEEL_TEST_PG_URL`). */
export const postgresAdminUrl: string =
  process.env.KEEL_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"

/** The database a test layer created: its kind and its full DSN (secrets included, for child processes). */
export interface Info {
  readonly kind: Kind
  readonly dsn: string
  /** A directory that lives as long as the database, for files the test needs. */
  readonly dir: string
}

/** The database of the current test layer. */
export class TestDatabase extends Context.Tag("@keel/sql/test/TestDatabase")<TestDatabase, Info>() {}

const tempDir: Effect.Effect<string, never, Scope.Scope> = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "keel-test-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

const randomName = () => `keel_test_${process.pid}_${Math.random().toString(36).slice(2, 10)}`

/** A new PostgreSQL database on the test server, dropped (WITH FORCE) when the scope closes. */
export const postgresDatabase: Effect.Effect<string, Database.OpenError, Scope.Scope> = Effect.gen(
  function* () {
    const name = randomName()
    const admin = <A, E>(statement: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>) =>
      Effect.provide(
        Effect.flatMap(SqlClient.SqlClient, statement),
        Database.layer(postgresAdminUrl, { maxConnections: 1 })
      )
    yield* Effect.acquireRelease(
      admin((sql) => Effect.orDie(sql`CREATE DATABASE ${sql(name)}`)),
      () => Effect.ignoreLogged(admin((sql) => sql`DROP DATABASE IF EXISTS ${sql(name)} WITH (FORCE)`))
    )
    const url = new URL(postgresAdminUrl)
    url.pathname = `/${name}`
    return url.toString()
  }
)

/** A fresh database of `kind`, as a DSN, removed when the scope closes. */
export const fresh = (kind: Kind): Effect.Effect<Info, Database.OpenError, Scope.Scope> =>
  Effect.gen(function* () {
    const dir = yield* tempDir
    switch (kind) {
      case "sqlite":
        return { kind, dir, dsn: `sqlite:${join(dir, "keel.db")}` }
      case "libsql":
        return { kind, dir, dsn: `file:${join(dir, "keel.db")}` }
      case "pglite":
        return { kind, dir, dsn: "pglite:memory" }
      case "turso":
        return { kind, dir, dsn: `turso:${join(dir, "keel.db")}` }
      case "postgres":
        return { kind, dir, dsn: yield* postgresDatabase }
    }
  })

/** `SqlClient`, `Backend` and `TestDatabase` for a fresh database of `kind`. */
export const layer = (
  kind: Kind,
  options: Database.Options = {}
): Layer.Layer<SqlClient.SqlClient | Backend.Backend | TestDatabase, Database.OpenError> =>
  Layer.unwrapScoped(
    Effect.map(fresh(kind), (info) =>
      Layer.merge(Database.layer(info.dsn, options), Layer.succeed(TestDatabase, info))
    )
  )

/**
 * `layer`, for a database that child processes open too. On turso a file opens in one process
 * only unless every process asks for the engine's experimental multi-process WAL, so the DSN (and
 * `Info.dsn`, which children get) carries `?multiprocess=1`; other backends are as in `layer`.
 */
export const sharedLayer = (
  kind: Kind,
  options: Database.Options = {}
): Layer.Layer<SqlClient.SqlClient | Backend.Backend | TestDatabase, Database.OpenError> =>
  Layer.unwrapScoped(
    Effect.map(fresh(kind), (fresh) => {
      const info = kind === "turso" ? { ...fresh, dsn: `${fresh.dsn}?multiprocess=1` } : fresh
      return Layer.merge(Database.layer(info.dsn, options), Layer.succeed(TestDatabase, info))
    })
  )

/** Declares `suite` once per selected backend, each in its own `describe` block. */
export const describeEach = (name: string, suite: (kind: Kind) => void): void => {
  for (const kind of kinds) describe(`${name} [${kind}]`, () => suite(kind))
}
