/**
 * Versioned migrations with per-package tracking.
 *
 * Each package registers numbered migrations, one list of statements per dialect. Every applied
 * migration is recorded (version, name, checksum, applied_at) in the package's own table. Each
 * migration runs in its own write transaction (BEGIN IMMEDIATE on SQLite, an advisory lock on
 * PostgreSQL), retried as a whole when busy, so processes starting at once apply each migration
 * exactly once, and a failing migration leaves the database at the previous version. A run with
 * nothing pending (every start but the first) only reads and takes no write lock: under other
 * processes' steady writes a start that had to win the lock could lose every attempt (on Turso,
 * whose busy timeout is 0, a waiter only polls) and fail with "database is locked".
 *
 * The stock `@effect/sql` Migrator is not used: it runs every pending migration in one
 * transaction, tracks only the highest id, and treats a failure to write its own bookkeeping as
 * "locked, skip".
 */
import { createHash } from "node:crypto"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { Backend } from "./Backend.js"
import { classify, type DbError, isTransient } from "./DbError.js"
import * as Retry from "./Retry.js"
import * as Transaction from "./Transaction.js"

/** One schema change, as statements for each dialect (one SQL statement per array element). */
export interface Migration {
  readonly version: number
  readonly name: string
  readonly sqlite: ReadonlyArray<string>
  readonly pg: ReadonlyArray<string>
}

/** A package's migrations and the table that records which were applied. */
export interface MigrationSet {
  /** The owning package, e.g. `queue`: the table is `keel_<name>_migrations`. */
  readonly name: string
  readonly migrations: ReadonlyArray<Migration>
}

/** A migration that was applied by this run. */
export interface Applied {
  readonly version: number
  readonly name: string
}

/** Where a known migration stands in the database. */
export interface Status {
  readonly version: number
  readonly name: string
  readonly state: "applied" | "pending" | "modified"
  readonly appliedAt: Option.Option<Date>
}

/** A migration's statements failed; it was rolled back and later ones were not attempted. */
export class MigrationFailed extends Schema.TaggedError<MigrationFailed>()("MigrationFailed", {
  set: Schema.String,
  version: Schema.Number,
  name: Schema.String,
  code: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `migration ${this.set} ${this.version} (${this.name}) failed and was rolled back: ${this.reason}`
  }
}

/** An already-applied migration was edited: its statements no longer match the recorded checksum. */
export class ChecksumMismatch extends Schema.TaggedError<ChecksumMismatch>()("ChecksumMismatch", {
  set: Schema.String,
  version: Schema.Number,
  name: Schema.String,
  recorded: Schema.String,
  current: Schema.String
}) {
  override get message(): string {
    return `migration ${this.set} ${this.version} (${this.name}) was edited after it was applied (checksum ${this.recorded.slice(0, 12)} recorded, ${this.current.slice(0, 12)} now)`
  }
}

/** The database records a migration this code does not know: it was migrated by a newer version. */
export class UnknownMigration extends Schema.TaggedError<UnknownMigration>()("UnknownMigration", {
  set: Schema.String,
  version: Schema.Number,
  name: Schema.String
}) {
  override get message(): string {
    return `the database has ${this.set} migration ${this.version} (${this.name}), which this version of Keel does not know`
  }
}

/** The migration list itself is malformed (a programming error in the package that owns it). */
export class InvalidMigrations extends Schema.TaggedError<InvalidMigrations>()("InvalidMigrations", {
  set: Schema.String,
  reason: Schema.String
}) {}

/** Every way running migrations can fail. */
export type MigrationError =
  | MigrationFailed
  | ChecksumMismatch
  | UnknownMigration
  | InvalidMigrations
  | DbError
  | Transaction.TransactionError

const setName = /^[a-z][a-z0-9_]{0,40}$/

const validate = (set: MigrationSet): Effect.Effect<void, InvalidMigrations> => {
  const fail = (reason: string) => Effect.fail(new InvalidMigrations({ set: set.name, reason }))
  if (!setName.test(set.name)) return fail("the set name must be lowercase letters, digits and _")
  let previous = 0
  for (const migration of set.migrations) {
    if (!Number.isSafeInteger(migration.version) || migration.version <= previous) {
      return fail(`versions must be positive integers in ascending order (at ${migration.version})`)
    }
    if (migration.name.trim() === "") return fail(`migration ${migration.version} has no name`)
    if (migration.sqlite.length === 0 || migration.pg.length === 0) {
      return fail(`migration ${migration.version} has no statements for a dialect`)
    }
    previous = migration.version
  }
  return Effect.void
}

/** The name of the table that records `set`'s applied migrations. */
export const tableName = (set: MigrationSet): string => `keel_${set.name}_migrations`

/**
 * Checksums computed when a bundle was built, keyed by the exact text they digest: esbuild's
 * `define` sets this for the CLI's fast path (`apps/cli/scripts/build.mjs`), so a cold
 * `keel port reserve` verifies its migrations without loading `node:crypto` (~6 ms). Undefined
 * everywhere else (declared in `internal/bundled.d.ts`); a text that is not in it is hashed as usual.
 */
const precomputed: ReadonlyMap<string, string> = new Map(
  typeof KEEL_MIGRATION_CHECKSUMS === "undefined" ? [] : KEEL_MIGRATION_CHECKSUMS
)

/** What a migration's checksum digests: its statements in one dialect, as JSON. */
const textOf = (migration: Migration, dialect: "sqlite" | "pg"): string => JSON.stringify(migration[dialect])

const digest = (text: string): string => createHash("sha256").update(text).digest("hex")

/** The checksum of a migration's statements in one dialect (the SHA-256 of their JSON, in hex). */
export const checksum = (migration: Migration, dialect: "sqlite" | "pg"): string => {
  const text = textOf(migration, dialect)
  return precomputed.get(text) ?? digest(text)
}

/**
 * Every statement text of `set`'s migrations, in both dialects, with the checksum `checksum` gives
 * it: the table a bundler passes as `KEEL_MIGRATION_CHECKSUMS` (`apps/cli/scripts/build.mjs`).
 */
export const checksumTable = (set: MigrationSet): ReadonlyArray<readonly [text: string, checksum: string]> =>
  set.migrations.flatMap((migration) =>
    (["sqlite", "pg"] as const).map((dialect) => {
      const text = textOf(migration, dialect)
      return [text, digest(text)] as const
    })
  )

const RecordedRow = Schema.Struct({
  version: Schema.Number,
  name: Schema.String,
  checksum: Schema.String,
  applied_at: Schema.Number
})

/** The rows of the bookkeeping table `table`, by version. */
const selectRecorded = (sql: SqlClient.SqlClient, table: string) =>
  Effect.flatMap(
    sql`SELECT version, name, checksum, applied_at FROM ${sql(table)} ORDER BY version`,
    (rows) => Effect.orDie(Schema.decodeUnknown(Schema.Array(RecordedRow))(rows))
  )

const recorded = (set: MigrationSet) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const table = tableName(set)
    yield* sql`CREATE TABLE IF NOT EXISTS ${sql(table)} (
      version BIGINT PRIMARY KEY,
      name TEXT NOT NULL,
      checksum TEXT NOT NULL,
      applied_at BIGINT NOT NULL
    )`
    return yield* selectRecorded(sql, table)
  }).pipe(Effect.mapError((error) => classify(error)))

const verifyRecorded = (
  set: MigrationSet,
  dialect: "sqlite" | "pg",
  rows: ReadonlyArray<typeof RecordedRow.Type>
): Effect.Effect<void, ChecksumMismatch | UnknownMigration> =>
  Effect.forEach(
    rows,
    (row): Effect.Effect<void, ChecksumMismatch | UnknownMigration> => {
      const known = set.migrations.find((migration) => migration.version === row.version)
      if (known === undefined) {
        return Effect.fail(new UnknownMigration({ set: set.name, version: row.version, name: row.name }))
      }
      const current = checksum(known, dialect)
      return current === row.checksum
        ? Effect.void
        : Effect.fail(
            new ChecksumMismatch({
              set: set.name,
              version: row.version,
              name: row.name,
              recorded: row.checksum,
              current
            })
          )
    },
    { discard: true }
  )

/**
 * The first migration of `set` that `rows` do not record (undefined: none is pending), once `rows`
 * are verified against `set` (`verifyRecorded`).
 */
const firstPending = (
  set: MigrationSet,
  dialect: "sqlite" | "pg",
  rows: ReadonlyArray<typeof RecordedRow.Type>
): Effect.Effect<Migration | undefined, ChecksumMismatch | UnknownMigration> =>
  Effect.map(verifyRecorded(set, dialect, rows), () => {
    const done = new Set(rows.map((row) => row.version))
    return set.migrations.find((migration) => !done.has(migration.version))
  })

/**
 * The recorded migrations, read without the write lock; `None` when the bookkeeping table is not
 * there (or, on Turso with multiprocess_wal, not visible yet to this connection): then only the
 * locked path (`applyNext`) can tell.
 */
const recordedIfPresent = (set: MigrationSet) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const table = tableName(set)
    const present = yield* sql.onDialectOrElse({
      pg: () =>
        sql`SELECT 1 AS present FROM information_schema.tables
          WHERE table_schema = current_schema() AND table_name = ${table}`,
      orElse: () => sql`SELECT 1 AS present FROM sqlite_master WHERE type = 'table' AND name = ${table}`
    })
    if (present.length === 0) return Option.none<ReadonlyArray<typeof RecordedRow.Type>>()
    return Option.some(yield* selectRecorded(sql, table))
  }).pipe(Effect.mapError((error) => classify(error)))

/**
 * True when every migration of `set` is recorded with its checksum: a read, retried as one, which
 * no writer blocks. Fails like `applyNext` on an edited or an unknown recorded migration.
 */
const upToDate = (set: MigrationSet) =>
  Effect.gen(function* () {
    const backend = yield* Backend
    const rows = yield* Retry.run(Retry.read(recordedIfPresent(set)))
    if (Option.isNone(rows)) return false
    return (yield* firstPending(set, backend.dialect, rows.value)) === undefined
  })

/** Serializes everything that creates or reads the bookkeeping table (CREATE TABLE races on pg). */
const lockSet = (set: MigrationSet) => Transaction.lock(`keel-migrations:${tableName(set)}`)

/** Applies the first pending migration in one transaction; `None` when none is pending. */
const applyNext = (set: MigrationSet) =>
  Effect.gen(function* () {
    const backend = yield* Backend
    const sql = yield* SqlClient.SqlClient
    yield* lockSet(set)
    const next = yield* firstPending(set, backend.dialect, yield* recorded(set))
    if (next === undefined) return Option.none<Applied>()
    yield* Effect.forEach(next[backend.dialect], (statement) => sql.unsafe(statement).raw, {
      discard: true
    }).pipe(
      Effect.mapError((error): DbError | MigrationFailed => {
        const reason = classify(error)
        // A transient failure (busy, deadlock) rolled the migration back: let the retry re-run it.
        if (isTransient(reason)) return reason
        return new MigrationFailed({
          set: set.name,
          version: next.version,
          name: next.name,
          code: reason.code,
          reason: reason.message
        })
      })
    )
    const now = yield* Clock.currentTimeMillis
    yield* Effect.mapError(
      sql`INSERT INTO ${sql(tableName(set))} ${sql.insert({
        version: next.version,
        name: next.name,
        checksum: checksum(next, backend.dialect),
        applied_at: now
      })}`,
      (error) => classify(error)
    )
    return Option.some<Applied>({ version: next.version, name: next.name })
  })

/**
 * Applies every pending migration of `set`, in order, each in its own transaction. Re-running is
 * a no-op that only reads (`upToDate`): it never waits for the write lock. Fails with
 * `ChecksumMismatch` if an applied migration was edited, `UnknownMigration` if the database is
 * ahead of the code, and `MigrationFailed` naming the migration that failed (the ones before it
 * stay applied). Returns the migrations this call applied.
 */
export const run = (
  set: MigrationSet
): Effect.Effect<ReadonlyArray<Applied>, MigrationError, SqlClient.SqlClient | Backend> =>
  Effect.gen(function* () {
    yield* validate(set)
    if (yield* upToDate(set)) return []
    const applied: Array<Applied> = []
    while (true) {
      const step = yield* Retry.run(Retry.transaction(applyNext(set)))
      if (Option.isNone(step)) return applied
      applied.push(step.value)
      yield* Effect.logDebug(`applied ${set.name} migration ${step.value.version} (${step.value.name})`)
    }
  })

/** Every known migration of `set` with its state: applied, pending, or modified since applied. */
export const status = (
  set: MigrationSet
): Effect.Effect<ReadonlyArray<Status>, MigrationError, SqlClient.SqlClient | Backend> =>
  Effect.gen(function* () {
    yield* validate(set)
    const backend = yield* Backend
    const rows = yield* Retry.run(Retry.transaction(Effect.zipRight(lockSet(set), recorded(set))))
    return set.migrations.map((migration): Status => {
      const row = rows.find((candidate) => candidate.version === migration.version)
      if (row === undefined) {
        return {
          version: migration.version,
          name: migration.name,
          state: "pending",
          appliedAt: Option.none()
        }
      }
      return {
        version: migration.version,
        name: migration.name,
        state: row.checksum === checksum(migration, backend.dialect) ? "applied" : "modified",
        appliedAt: Option.some(new Date(row.applied_at))
      }
    })
  })
