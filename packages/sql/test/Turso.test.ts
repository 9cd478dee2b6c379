/**
 * The `turso:` backend (the Turso engine, `@tursodatabase/database`): its DSN, its set-up, its
 * errors read from the engine's messages (pinned here: an upgrade that rewords one fails), its
 * refusals (a file another SQLite engine of this process has open, a file another process holds, a
 * statement that would crash the engine), on the current engine and on seed 000's 0.4.4. The
 * contract suites (Transaction, Batch, Migrations…) run on it through the backend matrix.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as SqlClient from "@effect/sql/SqlClient"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Backend, Database, DbError, Dsn, Migrations, Retry, Transaction, TursoClient } from "@keel/sql"
import { Cause, Context, Duration, Effect, Either, Exit, Layer, Option, Schedule, Scope } from "effect"
import * as Processes from "./support/Processes.js"
import * as TursoEngines from "./support/TursoEngines.js"

const dir = mkdtempSync(join(tmpdir(), "keel-turso-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
const freshFile = () => join(dir, `t${++files}.db`)

const holder = fileURLToPath(new URL("./fixtures/turso-holder.ts", import.meta.url))

/** Opens `dsn` in a scope of its own: the build's exit, and the scope that closes it. */
const open = (dsn: string, options: Database.Options = {}) =>
  Effect.flatMap(Scope.make(), (scope) =>
    Effect.map(Effect.exit(Layer.buildWithScope(Database.layer(dsn, options), scope)), (exit) => ({
      exit,
      scope
    }))
  )

/** The failure an open ended with (a test failure if it succeeded or died). */
const openFailure = (dsn: string, options: Database.Options = {}) =>
  Effect.flatMap(open(dsn, options), ({ exit, scope }) =>
    Effect.zipRight(
      Scope.close(scope, Exit.void),
      Exit.isFailure(exit)
        ? Effect.succeed(Option.getOrThrow(Cause.failureOption(exit.cause)))
        : Effect.dieMessage(`${dsn} opened`)
    )
  )

/** Runs `use` with the client and backend of `dsn` (opened for the call). */
const withDatabase = <A, E>(
  dsn: string,
  use: (sql: SqlClient.SqlClient, backend: Backend.Backend) => Effect.Effect<A, E>,
  options: Database.Options = {}
) =>
  Effect.scoped(
    Effect.flatMap(Layer.build(Database.layer(dsn, options)), (context) =>
      use(Context.get(context, SqlClient.SqlClient), Context.get(context, Backend.Backend))
    )
  )

describe("turso: DSNs", () => {
  it("a path, :memory: and the multiprocess flag parse; the printable form keeps the path", () => {
    const parsed = (dsn: string) => Either.getOrThrow(Dsn.parse(dsn))
    expect(parsed("turso:./x.db")).toEqual({
      _tag: "Turso",
      path: "./x.db",
      multiprocess: false,
      redacted: "turso:./x.db"
    })
    expect(parsed("turso:/var/keel.db?multiprocess=1")).toEqual({
      _tag: "Turso",
      path: "/var/keel.db",
      multiprocess: true,
      redacted: "turso:/var/keel.db?multiprocess=1"
    })
    expect(parsed("TURSO:/a.db?multiprocess=false")).toMatchObject({ path: "/a.db", multiprocess: false })
    expect(parsed("turso::memory:")).toMatchObject({ path: ":memory:", redacted: "turso::memory:" })
    expect(parsed("turso:///var/keel.db")).toMatchObject({
      path: "/var/keel.db",
      redacted: "turso:/var/keel.db"
    })
    expect(parsed("turso:memory")).toMatchObject({ path: ":memory:" })
  })

  it("bad input is a typed InvalidDsn that names the reason and never a secret", () => {
    const refused = (dsn: string) => Either.getOrThrow(Either.flip(Dsn.parse(dsn)))
    expect(refused("turso:").reason).toBe("the path is empty")
    expect(refused("turso:./x.db?multiprocess=yes").reason).toBe("multiprocess must be 1, 0, true or false")
    expect(refused("turso:./x.db?mode=ro").reason).toContain('unknown parameter "mode"')
    expect(refused("turso::memory:?multiprocess=1").reason).toContain("in-memory")
    const remote = refused("turso://keel:hunter22@db.example.com/x?authToken=sekrit-token-value")
    expect(remote.reason).toContain("libsql://")
    for (const text of [remote.message, remote.dsn, JSON.stringify(remote)]) {
      expect(text).not.toContain("hunter22")
      expect(text).not.toContain("sekrit-token-value")
    }
    const secretParameter = refused("turso:./x.db?password=hunter22")
    expect(JSON.stringify(secretParameter)).not.toContain("hunter22")
  })
})

describe("turso: the engine's messages, classified (pins: an engine upgrade that rewords one fails here)", () => {
  for (const [version, engine] of TursoEngines.engines) {
    it.live(
      `[${version}] locked, stale snapshot, unique, foreign key, not null: each its typed DbError`,
      () =>
        Effect.gen(function* () {
          const Engine = yield* engine
          const file = freshFile()
          const a = yield* Effect.promise(() => Engine.connect(file))
          const b = yield* Effect.promise(() => Engine.connect(file))
          const failure = (db: TursoClient.EngineDatabase, sql: string, ...params: Array<unknown>) =>
            Effect.promise(async () => {
              try {
                const statement = await db.prepare(sql)
                await statement.all(...params)
                statement.close()
                return undefined
              } catch (error) {
                return DbError.classify(error)
              }
            })
          const ok = (db: TursoClient.EngineDatabase, sql: string) =>
            Effect.flatMap(failure(db, sql), (error) =>
              error === undefined ? Effect.void : Effect.dieMessage(`${sql}: ${error.message}`)
            )
          yield* ok(a, "PRAGMA foreign_keys = ON")
          yield* ok(a, "CREATE TABLE parents (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)")
          yield* ok(
            a,
            "CREATE TABLE children (id INTEGER PRIMARY KEY, parent INTEGER NOT NULL REFERENCES parents (id))"
          )
          yield* ok(a, "INSERT INTO parents (id, name) VALUES (1, 'one')")
          // b opened before the schema existed; 0.4.4 does not see it until reopened.
          const c = yield* Effect.promise(() => Engine.connect(file))

          expect(yield* failure(a, "INSERT INTO parents (id, name) VALUES (2, 'one')")).toMatchObject({
            _tag: "UniqueViolation",
            code: "SQLITE_CONSTRAINT_UNIQUE"
          })
          expect(yield* failure(a, "INSERT INTO children (id, parent) VALUES (1, 42)")).toMatchObject({
            _tag: "ForeignKeyViolation",
            code: "SQLITE_CONSTRAINT_FOREIGNKEY"
          })
          expect(yield* failure(a, "INSERT INTO parents (id, name) VALUES (3, NULL)")).toMatchObject({
            _tag: "DatabaseFailure",
            code: "SQLITE_CONSTRAINT_NOTNULL"
          })
          // A held write lock: the other connection's BEGIN IMMEDIATE and autocommit write are Busy at once.
          yield* ok(a, "BEGIN IMMEDIATE")
          expect(yield* failure(c, "BEGIN IMMEDIATE")).toMatchObject({ _tag: "Busy", code: "SQLITE_BUSY" })
          expect(yield* failure(c, "INSERT INTO parents (id, name) VALUES (4, 'four')")).toMatchObject({
            _tag: "Busy",
            code: "SQLITE_BUSY"
          })
          yield* ok(a, "COMMIT")
          // A deferred transaction that read an old snapshot cannot write: Busy (SQLITE_BUSY_SNAPSHOT).
          yield* ok(c, "BEGIN")
          yield* ok(c, "SELECT COUNT(*) FROM parents")
          yield* ok(a, "INSERT INTO parents (id, name) VALUES (5, 'five')")
          expect(yield* failure(c, "INSERT INTO parents (id, name) VALUES (6, 'six')")).toMatchObject({
            _tag: "Busy",
            code: "SQLITE_BUSY_SNAPSHOT"
          })
          yield* ok(c, "ROLLBACK")
          // A closed connection is ConnectionLost.
          yield* Effect.promise(() => b.close())
          expect(yield* failure(b, "SELECT 1")).toMatchObject({ _tag: "ConnectionLost" })
          yield* Effect.promise(() => Promise.all([a.close(), c.close()]))
        })
    )
  }

  it.live("[0.7.2] MVCC's write-write conflict is Busy; Keel refuses to open a file left in mvcc mode", () =>
    Effect.gen(function* () {
      const Engine = yield* TursoEngines.current
      const file = freshFile()
      const a = yield* Effect.promise(() => Engine.connect(file))
      const run = (db: TursoClient.EngineDatabase, sql: string) =>
        Effect.promise(async () => {
          try {
            const statement = await db.prepare(sql)
            await statement.all()
            statement.close()
            return undefined
          } catch (error) {
            return DbError.classify(error)
          }
        })
      expect(yield* run(a, "PRAGMA journal_mode = 'mvcc'")).toBeUndefined()
      expect(yield* run(a, "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)")).toBeUndefined()
      expect(yield* run(a, "INSERT INTO t VALUES (1, 0)")).toBeUndefined()
      const b = yield* Effect.promise(() => Engine.connect(file))
      expect(yield* run(a, "BEGIN CONCURRENT")).toBeUndefined()
      expect(yield* run(b, "BEGIN CONCURRENT")).toBeUndefined()
      expect(yield* run(a, "UPDATE t SET v = 1 WHERE id = 1")).toBeUndefined()
      const conflict = yield* run(b, "UPDATE t SET v = 2 WHERE id = 1")
      expect(conflict).toMatchObject({ _tag: "Busy", code: "SQLITE_BUSY" })
      expect(conflict?.message).toContain("Write-write conflict")
      expect(yield* run(a, "COMMIT")).toBeUndefined()
      yield* Effect.promise(() => Promise.all([a.close(), b.close()]))
      const refused = yield* openFailure(`turso:${file}`)
      expect(refused).toMatchObject({ _tag: "SetupFailed", setting: "journal_mode", actual: "mvcc" })
    })
  )
})

describe("turso: opening", () => {
  it.live("foreign keys are on and verified, busy_timeout is 0, the journal is WAL", () =>
    withDatabase(`turso:${freshFile()}`, (sql, backend) =>
      Effect.gen(function* () {
        expect(backend).toMatchObject({ kind: "turso", dialect: "sqlite", singleSession: true })
        expect(backend.withDriver).toBeUndefined()
        const read = (pragma: string) =>
          Effect.map(
            sql.unsafe<Record<string, unknown>>(`PRAGMA ${pragma}`),
            (rows) => Object.values(rows[0] ?? {})[0]
          )
        expect(yield* read("foreign_keys")).toBe(1)
        expect(yield* read("busy_timeout")).toBe(0)
        expect(yield* read("journal_mode")).toBe("wal")
        yield* sql`CREATE TABLE parents (id INTEGER PRIMARY KEY)`
        yield* sql`CREATE TABLE children (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parents (id))`
        const orphan = yield* Effect.flip(
          DbError.refine(sql`INSERT INTO children (id, parent) VALUES (1, 9)`)
        )
        expect(orphan._tag).toBe("ForeignKeyViolation")
      })
    )
  )

  it.live(
    "a file open through better-sqlite3 or libSQL in this process is refused, typed, and vice versa",
    () =>
      Effect.gen(function* () {
        const file = freshFile()
        const sqlite = yield* open(`sqlite:${file}`)
        expect(Exit.isSuccess(sqlite.exit)).toBe(true)
        const refused = yield* openFailure(`turso:${file}`)
        expect(refused).toMatchObject({ _tag: "SetupFailed", setting: "driver", actual: "turso" })
        expect(refused.message).toContain("ignore each other's locks")
        yield* Scope.close(sqlite.scope, Exit.void)

        const turso = yield* open(`turso:${file}`)
        expect(Exit.isSuccess(turso.exit)).toBe(true)
        // Two turso: layers of one process share the engine's own locks: allowed.
        const again = yield* open(`turso:${file}`)
        expect(Exit.isSuccess(again.exit)).toBe(true)
        expect(yield* openFailure(`file:${file}`)).toMatchObject({
          _tag: "SetupFailed",
          setting: "driver",
          actual: "libsql"
        })
        expect(yield* openFailure(`sqlite:${file}`)).toMatchObject({
          _tag: "SetupFailed",
          setting: "driver",
          actual: "sqlite"
        })
        yield* Scope.close(again.scope, Exit.void)
        yield* Scope.close(turso.scope, Exit.void)
        const later = yield* open(`file:${file}`)
        expect(Exit.isSuccess(later.exit)).toBe(true)
        yield* Scope.close(later.scope, Exit.void)
      })
  )

  it.scopedLive(
    "a file another process holds is a SetupFailed naming ?multiprocess=1; with the flag in both, both open",
    () =>
      Effect.gen(function* () {
        const file = freshFile()
        const child = yield* Processes.spawn({ script: holder, args: [file] })
        yield* Effect.repeat(
          Effect.sync(() => child.stdout().includes("ready")),
          {
            until: (ready) => ready,
            schedule: Schedule.spaced("50 millis")
          }
        ).pipe(Effect.timeout("30 seconds"))
        const refused = yield* openFailure(`turso:${file}`)
        expect(refused).toMatchObject({ _tag: "SetupFailed", setting: "multiprocess" })
        expect(refused.message).toContain("?multiprocess=1")
        yield* child.kill("SIGKILL")
        yield* child.exited

        const shared = freshFile()
        const other = yield* Processes.spawn({ script: holder, args: [shared, "multiprocess"] })
        yield* Effect.repeat(
          Effect.sync(() => other.stdout().includes("ready")),
          {
            until: (ready) => ready,
            schedule: Schedule.spaced("50 millis")
          }
        ).pipe(Effect.timeout("30 seconds"))
        const rows = yield* withDatabase(`turso:${shared}?multiprocess=1`, (sql) =>
          Effect.zipRight(
            sql`CREATE TABLE t (id INTEGER PRIMARY KEY)`,
            Effect.zipRight(sql`INSERT INTO t (id) VALUES (1)`, sql<{ id: number }>`SELECT id FROM t`)
          )
        )
        expect(rows).toEqual([{ id: 1 }])
        expect(other.stderr()).toBe("")
      })
  )

  it.scopedLive(
    "with multiprocess_wal, a start whose migrations are all applied succeeds while another process holds the write lock",
    () =>
      Effect.gen(function* () {
        // A start that needed the write lock (BEGIN IMMEDIATE) for its migrations check could lose
        // every attempt to other processes' steady writes: the busy timeout is 0, a waiter only polls.
        const file = freshFile()
        const dsn = `turso:${file}?multiprocess=1`
        const migration = (version: number) => ({
          version,
          name: `table_${version}`,
          sqlite: [`CREATE TABLE start_${version} (id INTEGER PRIMARY KEY)`],
          pg: [`CREATE TABLE start_${version} (id INTEGER PRIMARY KEY)`]
        })
        const set = { name: "start", migrations: [migration(1)] }
        const migrate = (migrations: Migrations.MigrationSet) =>
          Migrations.run(migrations).pipe(
            Effect.provide(Database.layer(dsn)),
            // Short, so that a start that waits for the lock fails in a second, not in ~7.
            Retry.withPolicy(Retry.policy({ ...Retry.defaultOptions, maxElapsed: Duration.seconds(1) }))
          )
        expect(yield* migrate(set)).toEqual([{ version: 1, name: "table_1" }])
        const writer = yield* Processes.spawn({ script: holder, args: [file, "multiprocess", "write-lock"] })
        yield* Effect.repeat(
          Effect.sync(() => writer.stdout().includes("ready")),
          {
            until: (ready) => ready,
            schedule: Schedule.spaced("50 millis")
          }
        ).pipe(Effect.timeout("30 seconds"))
        expect(yield* migrate(set)).toEqual([])
        // The lock is held: a pending migration waits for it, and gives up as Busy.
        const pending = yield* Effect.flip(migrate({ ...set, migrations: [migration(1), migration(2)] }))
        expect(pending._tag).toBe("Busy")
        expect(writer.stderr()).toBe("")
      })
  )

  it.live("a missing directory is a DatabaseFailure that says so", () =>
    Effect.gen(function* () {
      const error = yield* openFailure(`turso:${join(dir, "missing", "x.db")}`)
      expect(error._tag).toBe("DatabaseFailure")
      expect(error.message).toContain("does not exist")
    })
  )
})

describe("turso: statements that would crash the engine are never issued", () => {
  for (const [version, engine] of TursoEngines.engines) {
    it.live(`[${version}] PRAGMA auto_vacuum is refused, typed, and the process and client live on`, () =>
      Effect.gen(function* () {
        const tursoEngine = yield* engine
        yield* withDatabase(
          `turso:${freshFile()}`,
          (sql) =>
            Effect.gen(function* () {
              for (const text of [
                "PRAGMA auto_vacuum",
                "pragma main.auto_vacuum = NONE",
                "  PRAGMA AUTO_VACUUM"
              ]) {
                const error = yield* Effect.flip(DbError.refine(sql.unsafe(text)))
                expect(error).toMatchObject({ _tag: "DatabaseFailure", code: TursoClient.refusedCode })
              }
              expect(yield* sql`SELECT 1 AS one`).toEqual([{ one: 1 }])
            }),
          { tursoEngine }
        )
      })
    )
  }

  it.live(
    "[0.4.4] no savepoints: a nested transaction fails typed, ROLLBACK TO is refused, the outer one still commits",
    () =>
      Effect.gen(function* () {
        const tursoEngine = yield* TursoEngines.seed000
        yield* withDatabase(
          `turso:${freshFile()}`,
          (sql, backend) =>
            Effect.gen(function* () {
              yield* sql`CREATE TABLE t (id INTEGER PRIMARY KEY)`
              const inner = yield* Transaction.immediate(
                Effect.gen(function* () {
                  yield* sql`INSERT INTO t (id) VALUES (1)`
                  return yield* Effect.either(Transaction.immediate(sql`INSERT INTO t (id) VALUES (2)`))
                })
              ).pipe(Effect.provideService(Backend.Backend, backend))
              expect(Either.isLeft(inner)).toBe(true)
              const refused = yield* Effect.flip(
                DbError.refine(sql.unsafe("ROLLBACK TO SAVEPOINT keel_savepoint_1"))
              )
              expect(refused).toMatchObject({ code: TursoClient.refusedCode })
              expect(yield* sql<{ id: number }>`SELECT id FROM t`).toEqual([{ id: 1 }])
            }),
          { tursoEngine }
        )
      })
  )

  it.live("a statement prepared before a schema change is never reused after it (0.7.2 panics on one)", () =>
    Effect.gen(function* () {
      const file = freshFile()
      yield* withDatabase(`turso:${file}`, (sql) =>
        Effect.gen(function* () {
          yield* sql`CREATE TABLE t (x INTEGER)`
          yield* sql`INSERT INTO t (x) VALUES (1)`
          expect(yield* sql`SELECT * FROM t`).toEqual([{ x: 1 }])
          // Another connection of this process changes the schema.
          yield* withDatabase(`turso:${file}`, (other) => other`ALTER TABLE t ADD COLUMN y TEXT DEFAULT 'd'`)
          expect(yield* sql`SELECT * FROM t`).toEqual([{ x: 1, y: "d" }])
          yield* sql`ALTER TABLE t ADD COLUMN z INTEGER DEFAULT 7`
          expect(yield* sql`INSERT INTO t (x) VALUES (2) RETURNING *`).toEqual([{ x: 2, y: "d", z: 7 }])
        })
      )
    })
  )
})
