/**
 * The hazards DESIGN.md lists for the chosen libraries ("Known hazards in the chosen libraries"),
 * each pinned on the STOCK library so that an upgrade that changes the behaviour fails here, and
 * next to it — where Keel works around the hazard — the same situation on `Database.layer`.
 *
 * Locks are held by a second connection of the *same* native library (better-sqlite3 for the
 * sqlite-node client, `@libsql/client` for libSQL): POSIX file locks are per process, so only
 * connections inside one SQLite library instance see each other's locks within one process.
 */
import { mkdtempSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Reactivity from "@effect/experimental/Reactivity"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Statement from "@effect/sql/Statement"
import * as LibsqlClient from "@effect/sql-libsql/LibsqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { describe, expect, it, layer, type Vitest } from "@effect/vitest"
import { Backend, Batch, Database, DbError, Migrations, Retry, Transaction } from "@keel/sql"
import * as Libsql from "@libsql/client"
import BetterSqlite3 from "better-sqlite3"
import {
  Cause,
  Context,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Option,
  Predicate,
  Redacted,
  type Scope
} from "effect"
import * as KeelSqlite from "../src/internal/sqlite.js"
import * as TestDatabase from "./support/TestDatabase.js"

// --- helpers ---------------------------------------------------------------------------------

/** A temp directory, removed with the scope. */
const tempDir: Effect.Effect<string, never, Scope.Scope> = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "keel-hazards-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

/** The stock `@effect/sql-sqlite-node` client on `filename` (WAL, better-sqlite3 defaults). */
const stockSqlite = (filename: string) =>
  Effect.provideServiceEffect(SqliteClient.make({ filename }), Reactivity.Reactivity, Reactivity.make)

/** The stock `@effect/sql-libsql` client on a `file:` URL. */
const stockLibsql = (url: string) =>
  Effect.provideServiceEffect(LibsqlClient.make({ url }), Reactivity.Reactivity, Reactivity.make)

/** A lock on a database file, held by another connection until `release` (or the scope ends). */
interface HeldLock {
  readonly release: Effect.Effect<void>
}

/** Takes SQLite's write lock on `filename` with a raw better-sqlite3 connection (BEGIN IMMEDIATE). */
const holdSqliteLock = (filename: string): Effect.Effect<HeldLock, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.sync(() => {
        const db = new BetterSqlite3(filename)
        db.exec("BEGIN IMMEDIATE")
        return db
      }),
      (db) =>
        Effect.sync(() => {
          if (db.inTransaction) db.exec("ROLLBACK")
          db.close()
        })
    ),
    (db) => ({
      release: Effect.sync(() => {
        if (db.inTransaction) db.exec("ROLLBACK")
      })
    })
  )

/** Takes the write lock on a libSQL `file:` database with a second `@libsql/client` connection. */
const holdLibsqlLock = (url: string): Effect.Effect<HeldLock, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.promise(async () => {
        const holder = Libsql.createClient({ url })
        await holder.execute("BEGIN IMMEDIATE")
        return holder
      }),
      (holder) => Effect.sync(() => holder.close())
    ),
    (holder) => ({
      release: Effect.asVoid(Effect.promise(() => holder.execute("ROLLBACK")))
    })
  )

/** The driver's error code carried by an `SqlError` (`error.cause.code`). */
const driverCode = (error: unknown): string | undefined => {
  const cause = Predicate.hasProperty(error, "cause") ? error.cause : undefined
  return Predicate.hasProperty(cause, "code") && typeof cause.code === "string" ? cause.code : undefined
}

/** The driver's message carried by an `SqlError` (`error.cause.message`). */
const driverMessage = (error: unknown): string => {
  const cause = Predicate.hasProperty(error, "cause") ? error.cause : undefined
  return Predicate.hasProperty(cause, "message") && typeof cause.message === "string" ? cause.message : ""
}

/** The defects of a failed exit (empty for a success). */
const defectsOf = <A, E>(exit: Exit.Exit<A, E>): ReadonlyArray<unknown> =>
  Exit.isFailure(exit) ? Array.from(Cause.defects(exit.cause)) : []

/** The typed failures of a failed exit (empty for a success). */
const failuresOf = <A, E>(exit: Exit.Exit<A, E>): ReadonlyArray<E> =>
  Exit.isFailure(exit) ? Array.from(Cause.failures(exit.cause)) : []

/** `COUNT(*)` of `table` through `sql`. */
const count = (sql: SqlClient.SqlClient, table: string) =>
  Effect.map(sql<{ n: number }>`SELECT COUNT(*) AS n FROM ${sql(table)}`, (rows) => Number(rows[0]?.n ?? 0))

/** `COUNT(*)` of `table` read by a fresh raw better-sqlite3 connection: what is committed. */
const committedCount = (filename: string, table: string): number => {
  const db = new BetterSqlite3(filename, { readonly: true })
  try {
    const row: unknown = db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get()
    return Predicate.hasProperty(row, "n") && typeof row.n === "number" ? row.n : -1
  } finally {
    db.close()
  }
}

/** The first column of the first row of a PRAGMA read, as a lowercase string. */
const pragma = (sql: SqlClient.SqlClient, name: string) =>
  Effect.map(sql.unsafe<Record<string, unknown>>(`PRAGMA ${name}`), (rows) =>
    String(Object.values(rows[0] ?? {})[0]).toLowerCase()
  )

const pragmas = (sql: SqlClient.SqlClient) =>
  Effect.all({
    journal_mode: pragma(sql, "journal_mode"),
    busy_timeout: pragma(sql, "busy_timeout"),
    foreign_keys: pragma(sql, "foreign_keys"),
    synchronous: pragma(sql, "synchronous")
  })

/**
 * Starts a 10 ms timer now and returns an effect that waits for it and yields how late (ms) it
 * fired: a measure of how long the event loop was blocked meanwhile.
 */
const startTimer: Effect.Effect<Effect.Effect<number>> = Effect.sync(() => {
  const started = performance.now()
  const fired = new Promise<number>((resolve) => {
    setTimeout(() => resolve(performance.now() - started - 10), 10)
  })
  return Effect.promise(() => fired)
})

const familyTables = (sql: SqlClient.SqlClient) =>
  Effect.gen(function* () {
    yield* sql`CREATE TABLE parents (id INTEGER PRIMARY KEY)`
    yield* sql`CREATE TABLE children (
      id INTEGER PRIMARY KEY,
      parent_id INTEGER NOT NULL REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED
    )`
    yield* sql`CREATE TABLE strict_children (
      id INTEGER PRIMARY KEY,
      parent_id INTEGER NOT NULL REFERENCES parents (id)
    )`
    yield* sql`CREATE TABLE items (id INTEGER PRIMARY KEY, tag TEXT UNIQUE)`
  })

/** Runs `body` against Keel's layer for `dsn`. */
const onKeel = <A, E>(dsn: string, body: Effect.Effect<A, E, SqlClient.SqlClient | Backend.Backend>) =>
  Effect.provide(body, Database.layer(dsn))

/** `n` distinct integers, for statements that bind `n` parameters. */
const ids = (n: number): ReadonlyArray<number> => Array.from({ length: n }, (_, index) => index)

const timeout = { timeout: 10_000 }

// --- 0. a failed prepare is cached ------------------------------------------------------------

describe("hazard: the stock sqlite-node prepare cache keeps failures", () => {
  /** A rollback-journal file whose schema another connection locks exclusively until released. */
  const lockedSchema = (file: string) => {
    const holder = new BetterSqlite3(file)
    holder.exec("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
    holder.exec("BEGIN EXCLUSIVE")
    return {
      release: () => {
        holder.exec("COMMIT")
        holder.close()
      }
    }
  }

  it.scopedLive(
    "stock: a statement first prepared while the schema was locked fails with SQLITE_BUSY forever after",
    () =>
      Effect.gen(function* () {
        const file = join(yield* tempDir, "stock.db")
        new BetterSqlite3(file).close()
        const lock = lockedSchema(file)
        const sql = yield* Effect.provideServiceEffect(
          SqliteClient.make({ filename: file, disableWAL: true }),
          Reactivity.Reactivity,
          Reactivity.make
        )
        yield* sql.unsafe("PRAGMA busy_timeout = 0")
        const whileLocked = yield* Effect.either(sql`SELECT x FROM t`)
        expect(whileLocked._tag).toBe("Left")
        lock.release()
        const afterRelease = yield* Effect.either(sql`SELECT x FROM t`)
        expect(afterRelease._tag === "Left" && DbError.classify(afterRelease.left)._tag).toBe("Busy")
        expect((yield* Effect.either(sql`SELECT x FROM t WHERE 1 = 1`))._tag).toBe("Right")
      }),
    timeout
  )

  it.scopedLive(
    "Keel: the same statement succeeds once the lock is gone",
    () =>
      Effect.gen(function* () {
        const file = join(yield* tempDir, "keel.db")
        new BetterSqlite3(file).close()
        const lock = lockedSchema(file)
        // Keel's SQLite connection itself (the cache under test), on the same rollback-journal setup.
        const { client: sql } = yield* Effect.provideServiceEffect(
          KeelSqlite.make(file),
          Reactivity.Reactivity,
          Reactivity.make
        )
        yield* sql.unsafe("PRAGMA busy_timeout = 0")
        const whileLocked = yield* Effect.either(DbError.refine(sql`SELECT x FROM t`))
        expect(whileLocked._tag === "Left" && whileLocked.left._tag).toBe("Busy")
        lock.release()
        expect(yield* sql`SELECT x FROM t`).toEqual([])
      }),
    timeout
  )
})

// --- 1. a failed COMMIT ----------------------------------------------------------------------

describe("hazard: a failed COMMIT in stock withTransaction", () => {
  it.scopedLive(
    "stock withTransaction turns a failed COMMIT into a defect, and the sqlite-node connection stays in the open transaction: a later plain write is lost",
    () =>
      Effect.gen(function* () {
        const file = join(yield* tempDir, "stock.db")
        const sql = yield* stockSqlite(file)
        yield* familyTables(sql)

        const exit = yield* Effect.exit(
          sql.withTransaction(sql`INSERT INTO children (id, parent_id) VALUES (1, 404)`)
        )
        // A defect, not a failure: `catchTag("SqlError")` cannot see it.
        expect(failuresOf(exit)).toEqual([])
        const defects = defectsOf(exit)
        expect(defects).toHaveLength(1)
        expect(defects[0]).toBeInstanceOf(SqlError)
        expect(driverCode(defects[0])).toBe("SQLITE_CONSTRAINT_FOREIGNKEY")

        // The connection is still inside the transaction COMMIT could not end: this plain write
        // "succeeds" but joins it, so no other connection sees it...
        yield* sql`INSERT INTO parents (id) VALUES (7)`
        expect(yield* count(sql, "parents")).toBe(1)
        expect(committedCount(file, "parents")).toBe(0)

        // ...and the next transaction cannot BEGIN (typed error), rolls back — and takes the
        // plain write with it.
        const next = yield* sql
          .withTransaction(sql`INSERT INTO items (id, tag) VALUES (1, 'next')`)
          .pipe(Effect.flip)
        expect(next).toBeInstanceOf(SqlError)
        expect(driverMessage(next)).toMatch(/within a transaction/)
        expect(yield* count(sql, "parents")).toBe(0)
        expect(committedCount(file, "parents")).toBe(0)
      }),
    timeout
  )
  // Keel's side — a typed `CommitRejected` and the next plain write kept — runs on every backend in
  // Transaction.test.ts: "a failed COMMIT (deferred foreign key) is a typed CommitRejected and the
  // next write is not lost" and "the client's own withTransaction reports a failed COMMIT as an
  // error, not a defect".
})

// --- 2. BEGIN IMMEDIATE in the begin hook ----------------------------------------------------

describe("hazard: BEGIN IMMEDIATE in the stock begin hook", () => {
  it.scopedLive(
    "BEGIN IMMEDIATE in the begin hook loses SQLITE_BUSY: the automatic ROLLBACK fails with 'no transaction is active' and the result is a defect",
    () =>
      Effect.gen(function* () {
        const file = join(yield* tempDir, "stock.db")
        const stock = yield* stockSqlite(file)
        yield* stock`CREATE TABLE items (id INTEGER PRIMARY KEY)`
        // Fail at once instead of blocking the event loop for better-sqlite3's default 5 s.
        yield* stock`PRAGMA busy_timeout = 0`
        const connection = yield* Effect.scoped(stock.reserve)
        const sql = yield* Effect.provideServiceEffect(
          SqlClient.make({
            acquirer: Effect.succeed(connection),
            compiler: Statement.makeCompilerSqlite(),
            beginTransaction: "BEGIN IMMEDIATE",
            spanAttributes: []
          }),
          Reactivity.Reactivity,
          Reactivity.make
        )
        const lock = yield* holdSqliteLock(file)

        const exit = yield* Effect.exit(sql.withTransaction(sql`INSERT INTO items (id) VALUES (1)`))
        expect(failuresOf(exit)).toEqual([])
        const defects = defectsOf(exit)
        expect(defects).toHaveLength(1)
        // The defect is the failed ROLLBACK; the SQLITE_BUSY of BEGIN is nowhere in the cause.
        expect(driverMessage(defects[0])).toMatch(/no transaction is active/)
        expect(driverCode(defects[0])).toBe("SQLITE_ERROR")
        expect(Cause.pretty(Exit.isFailure(exit) ? exit.cause : Cause.empty)).not.toMatch(/SQLITE_BUSY/)
        yield* lock.release
      }),
    timeout
  )

  it.scopedLive(
    "Keel: Transaction.immediate against a held write lock is a typed Busy, and the client is usable once the lock is released",
    () =>
      Effect.gen(function* () {
        const file = join(yield* tempDir, "keel.db")
        yield* onKeel(
          `sqlite:${file}`,
          Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            yield* sql`CREATE TABLE items (id INTEGER PRIMARY KEY)`
            const lock = yield* holdSqliteLock(file)
            const error = yield* Transaction.immediate(sql`INSERT INTO items (id) VALUES (1)`).pipe(
              Effect.flip
            )
            expect(error._tag).toBe("Busy")
            if (error._tag === "Busy") expect(error.code).toMatch(/^SQLITE_BUSY/)
            yield* lock.release
            yield* Transaction.immediate(sql`INSERT INTO items (id) VALUES (2)`)
            expect(yield* count(sql, "items")).toBe(1)
            expect(committedCount(file, "items")).toBe(1)
          }).pipe(Effect.scoped)
        )
      }),
    timeout
  )
})

// --- 3. busy_timeout blocks the event loop ---------------------------------------------------

describe("hazard: better-sqlite3's busy_timeout blocks the event loop", () => {
  it.scopedLive(
    "with busy_timeout=300 a write that waits for a lock blocks the event loop: a 10 ms timer fires ≥ 250 ms late",
    () =>
      Effect.gen(function* () {
        const file = join(yield* tempDir, "stock.db")
        const sql = yield* stockSqlite(file)
        yield* sql`CREATE TABLE items (id INTEGER PRIMARY KEY)`
        yield* sql`PRAGMA busy_timeout = 300`
        yield* holdSqliteLock(file)
        const lateness = yield* startTimer
        const write = yield* Effect.exit(sql`INSERT INTO items (id) VALUES (1)`)
        const late = yield* lateness
        expect(failuresOf(write).map(driverCode)).toEqual(["SQLITE_BUSY"])
        expect(late).toBeGreaterThanOrEqual(250)
      }),
    timeout
  )

  it.scopedLive(
    "Keel: with its 20 ms busy_timeout a write waits for a held lock asynchronously (Retry) and a 10 ms timer stays on time",
    () =>
      Effect.gen(function* () {
        const file = join(yield* tempDir, "keel.db")
        yield* onKeel(
          `sqlite:${file}`,
          Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            expect(yield* pragma(sql, "busy_timeout")).toBe("20")
            yield* sql`CREATE TABLE items (id INTEGER PRIMARY KEY)`
            const lock = yield* holdSqliteLock(file)
            const releaseLater = setTimeout(() => Effect.runSync(lock.release), 300)
            yield* Effect.addFinalizer(() => Effect.sync(() => clearTimeout(releaseLater)))
            const started = performance.now()
            const lateness = yield* startTimer
            yield* Retry.run(Retry.transaction(sql`INSERT INTO items (id) VALUES (1)`))
            const waited = performance.now() - started
            const late = yield* lateness
            expect(waited).toBeGreaterThanOrEqual(250)
            expect(late).toBeLessThan(100)
            expect(committedCount(file, "items")).toBe(1)
          }).pipe(Effect.scoped)
        )
      }),
    timeout
  )
})

// --- 4. defaults -----------------------------------------------------------------------------

describe("hazard: connection defaults", () => {
  it.scopedLive(
    "stock sqlite-node opens with journal_mode=wal, busy_timeout=5000, foreign_keys=1, synchronous=2 (FULL)",
    () =>
      Effect.gen(function* () {
        const sql = yield* stockSqlite(join(yield* tempDir, "stock.db"))
        // DESIGN.md recorded synchronous=NORMAL (1); better-sqlite3 12.11 reports FULL (2).
        expect(yield* pragmas(sql)).toEqual({
          journal_mode: "wal",
          busy_timeout: "5000",
          foreign_keys: "1",
          synchronous: "2"
        })
      }),
    timeout
  )

  it.scopedLive(
    "stock libSQL file: opens with journal_mode=delete and busy_timeout=0, and every pragma resets after a withTransaction",
    () =>
      Effect.gen(function* () {
        const sql = yield* stockLibsql(`file:${join(yield* tempDir, "stock.db")}`)
        expect(yield* pragmas(sql)).toEqual({
          journal_mode: "delete",
          busy_timeout: "0",
          foreign_keys: "1",
          synchronous: "2"
        })
        yield* sql`PRAGMA busy_timeout = 1234`
        yield* sql`PRAGMA foreign_keys = OFF`
        expect(yield* pragma(sql, "busy_timeout")).toBe("1234")
        expect(yield* pragma(sql, "foreign_keys")).toBe("0")
        // The SDK hands its connection to the transaction and lazily opens a new one.
        yield* sql.withTransaction(sql`SELECT 1`)
        expect(yield* pragma(sql, "busy_timeout")).toBe("0")
        expect(yield* pragma(sql, "foreign_keys")).toBe("1")
      }),
    timeout
  )

  it.scopedLive(
    "Keel: sqlite and libSQL keep WAL, foreign_keys=1, busy_timeout=20 and synchronous=NORMAL after several transactions",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        for (const dsn of [`sqlite:${join(dir, "keel.db")}`, `file:${join(dir, "keel-libsql.db")}`]) {
          yield* onKeel(
            dsn,
            Effect.gen(function* () {
              const sql = yield* SqlClient.SqlClient
              yield* sql`CREATE TABLE items (id INTEGER PRIMARY KEY)`
              for (const id of [1, 2, 3]) {
                yield* Transaction.immediate(sql`INSERT INTO items (id) VALUES (${id})`)
                yield* sql.withTransaction(sql`SELECT 1`)
              }
              expect(yield* pragmas(sql)).toEqual({
                journal_mode: "wal",
                busy_timeout: "20",
                foreign_keys: "1",
                synchronous: "1"
              })
            })
          )
        }
      }),
    timeout
  )
})

// --- 4b. a write stepped only once never checkpoints ---------------------------------------------

describe("hazard: better-sqlite3 `get()` on an INSERT … RETURNING skips the WAL auto-checkpoint", () => {
  /** Bytes of `file`'s WAL after `rows` single-row inserts, each its own autocommit statement. */
  const walAfter = (file: string, insert: (db: BetterSqlite3.Database) => void, rows: number): number => {
    const db = new BetterSqlite3(file)
    try {
      db.pragma("journal_mode = WAL")
      db.exec("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
      for (let i = 0; i < rows; i++) insert(db)
      return statSync(`${file}-wal`).size
    } finally {
      db.close()
    }
  }
  const body = "x".repeat(200)
  // 3,000 rows of 200 bytes are ~150 pages per 1,000 rows; wal_autocheckpoint is 1,000 pages, so
  // a checkpointed WAL restarts and stays near its high-water mark of ~1,000 pages (~4 MB).
  const rows = 6_000
  const bounded = 1_100 * 4_096

  it.scopedLive(
    "autocommit inserts read with get() (the statement is reset, not stepped to its end) grow the WAL without bound; all() and run() checkpoint",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const viaGet = walAfter(
          join(dir, "get.db"),
          (db) => db.prepare("INSERT INTO items (body) VALUES (?) RETURNING id").get(body),
          rows
        )
        const viaAll = walAfter(
          join(dir, "all.db"),
          (db) => db.prepare("INSERT INTO items (body) VALUES (?) RETURNING id").all(body),
          rows
        )
        const viaRun = walAfter(
          join(dir, "run.db"),
          (db) => db.prepare("INSERT INTO items (body) VALUES (?)").run(body),
          rows
        )
        // SQLite runs the WAL hook (and so the auto-checkpoint) only when a statement returns
        // SQLITE_DONE; get() commits inside sqlite3_reset instead.
        expect(viaGet).toBeGreaterThan(3 * bounded)
        expect(viaAll).toBeLessThan(bounded)
        expect(viaRun).toBeLessThan(bounded)
      }),
    { timeout: 60_000 }
  )

  it.scopedLive(
    "Keel: sends through Transaction.single and plain statements with RETURNING keep the WAL bounded",
    () =>
      Effect.gen(function* () {
        const file = join(yield* tempDir, "keel.db")
        yield* onKeel(
          `sqlite:${file}`,
          Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            yield* sql`CREATE TABLE items (id INTEGER PRIMARY KEY, body TEXT NOT NULL)`
            for (let i = 0; i < rows / 2; i++) {
              yield* Transaction.single(sql`INSERT INTO items (body) VALUES (${body}) RETURNING id`)
              yield* sql`INSERT INTO items (body) VALUES (${body}) RETURNING id`
            }
            expect(statSync(`${file}-wal`).size).toBeLessThan(bounded)
          })
        )
      }),
    { timeout: 60_000 }
  )
})

// --- 5. @effect/sql-libsql hangs and wedges --------------------------------------------------

describe("hazard: @effect/sql-libsql after a busy BEGIN or a failed COMMIT", () => {
  it.scopedLive(
    "stock libSQL: a busy BEGIN leaks the semaphore permit and the next statement never completes",
    () =>
      Effect.gen(function* () {
        const url = `file:${join(yield* tempDir, "stock.db")}`
        const sql = yield* stockLibsql(url)
        yield* sql`CREATE TABLE items (id INTEGER PRIMARY KEY)`
        const lock = yield* holdLibsqlLock(url)
        const begin = yield* sql.withTransaction(sql`INSERT INTO items (id) VALUES (1)`).pipe(Effect.flip)
        expect(driverCode(begin)).toBe("SQLITE_BUSY")
        yield* lock.release
        // The lock is gone, but the permit taken before BEGIN was never given back.
        const next = yield* sql`SELECT 1 AS one`.pipe(Effect.timeoutOption(Duration.seconds(1)))
        expect(Option.isNone(next)).toBe(true)
      }),
    timeout
  )

  it.scopedLive(
    "stock libSQL: after a failed COMMIT (a defect) the client is wedged: writes are busy and the next transaction hangs",
    () =>
      Effect.gen(function* () {
        const url = `file:${join(yield* tempDir, "stock.db")}`
        const sql = yield* stockLibsql(url)
        yield* familyTables(sql)
        const exit = yield* Effect.exit(
          sql.withTransaction(sql`INSERT INTO children (id, parent_id) VALUES (1, 404)`)
        )
        expect(failuresOf(exit)).toEqual([])
        expect(defectsOf(exit).map(driverCode)).toEqual(["SQLITE_CONSTRAINT_FOREIGNKEY"])
        // The abandoned SDK transaction still holds the write lock on its own connection.
        const write = yield* sql`INSERT INTO parents (id) VALUES (7)`.pipe(Effect.flip)
        expect(driverCode(write)).toBe("SQLITE_BUSY")
        const transaction = yield* sql
          .withTransaction(sql`INSERT INTO parents (id) VALUES (8)`)
          .pipe(Effect.flip)
        expect(driverCode(transaction)).toBe("SQLITE_BUSY")
        const read = yield* sql`SELECT 1 AS one`.pipe(Effect.timeoutOption(Duration.seconds(1)))
        expect(Option.isNone(read)).toBe(true)
      }),
    timeout
  )

  it.scopedLive(
    "stock libSQL: after any statement fails with SQLITE_BUSY, COMMIT on that connection fails with 'SQL statements in progress' (a defect)",
    () =>
      Effect.gen(function* () {
        // Not in DESIGN.md. libsql-js never resets a statement whose step failed; SQLite keeps a
        // busy statement active so it can be retried, and COMMIT refuses while one is active.
        const url = `file:${join(yield* tempDir, "stock.db")}`
        const sql = yield* stockLibsql(url)
        yield* sql`CREATE TABLE items (id INTEGER PRIMARY KEY)`
        const lock = yield* holdLibsqlLock(url)
        const busy = yield* sql`INSERT INTO items (id) VALUES (1)`.pipe(Effect.flip)
        expect(driverCode(busy)).toBe("SQLITE_BUSY")
        yield* lock.release
        const exit = yield* Effect.exit(sql.withTransaction(sql`INSERT INTO items (id) VALUES (2)`))
        expect(failuresOf(exit)).toEqual([])
        const defects = defectsOf(exit)
        expect(defects.map(driverCode)).toEqual(["SQLITE_BUSY"])
        expect(driverMessage(defects[0])).toMatch(/SQL statements in progress/)
      }),
    timeout
  )

  it.scopedLive(
    "Keel libSQL: a busy BEGIN is a typed Busy and the client does not hang afterwards",
    () =>
      Effect.gen(function* () {
        const url = `file:${join(yield* tempDir, "keel.db")}`
        yield* onKeel(
          url,
          Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            yield* sql`CREATE TABLE items (id INTEGER PRIMARY KEY)`
            const lock = yield* holdLibsqlLock(url)
            const busy = yield* Transaction.immediate(sql`INSERT INTO items (id) VALUES (1)`).pipe(
              Effect.flip
            )
            expect(busy._tag).toBe("Busy")
            yield* lock.release
            const read = yield* sql`SELECT 1 AS one`.pipe(Effect.timeoutOption(Duration.seconds(1)))
            expect(Option.isSome(read)).toBe(true)
            const write = yield* sql`INSERT INTO items (id) VALUES (2)`.pipe(
              Effect.timeoutOption(Duration.seconds(1))
            )
            expect(Option.isSome(write)).toBe(true)
            expect(yield* count(sql, "items")).toBe(1)
          }).pipe(Effect.scoped)
        )
      }),
    timeout
  )

  it.scopedLive(
    "Keel libSQL: a failed COMMIT is a typed CommitRejected, and later plain writes and transactions commit",
    () =>
      Effect.gen(function* () {
        const url = `file:${join(yield* tempDir, "keel.db")}`
        yield* onKeel(
          url,
          Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            yield* familyTables(sql)
            const rejected = yield* Transaction.immediate(
              sql`INSERT INTO children (id, parent_id) VALUES (1, 404)`
            ).pipe(Effect.flip)
            expect(rejected._tag).toBe("CommitRejected")
            if (rejected._tag === "CommitRejected") expect(rejected.reason._tag).toBe("ForeignKeyViolation")
            yield* sql`INSERT INTO parents (id) VALUES (7)`
            yield* Transaction.immediate(sql`INSERT INTO parents (id) VALUES (8)`).pipe(
              Effect.timeout(Duration.seconds(1))
            )
            expect(yield* count(sql, "children")).toBe(0)
          })
        )
        // Committed for every connection, not only for Keel's own.
        const reader = Libsql.createClient({ url })
        const rows = yield* Effect.promise(() => reader.execute("SELECT COUNT(*) AS n FROM parents"))
        reader.close()
        expect(Number(rows.rows[0]?.n)).toBe(2)
      }),
    timeout
  )

  // Keel's local libSQL connection replaces itself after a busy or locked error (see the stock
  // test above: the SDK leaves the failed statement in progress and the connection stops committing).
  it.scopedLive(
    "Keel libSQL: a transaction after a busy statement commits",
    () =>
      Effect.gen(function* () {
        const url = `file:${join(yield* tempDir, "keel.db")}`
        yield* onKeel(
          url,
          Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            yield* sql`CREATE TABLE items (id INTEGER PRIMARY KEY)`
            const lock = yield* holdLibsqlLock(url)
            const busy = yield* Transaction.immediate(sql`INSERT INTO items (id) VALUES (1)`).pipe(
              Effect.flip
            )
            expect(busy._tag).toBe("Busy")
            yield* lock.release
            const exit = yield* Effect.exit(Transaction.immediate(sql`INSERT INTO items (id) VALUES (2)`))
            expect(Exit.isSuccess(exit) ? "committed" : Cause.pretty(exit.cause)).toBe("committed")
          }).pipe(Effect.scoped)
        )
      }),
    timeout
  )
})

// --- 6. waiting for a transaction's connection is uninterruptible ----------------------------

describe("hazard: waiting for a stock transaction's connection", () => {
  it.scopedLive(
    "a fiber waiting for a stock transaction's connection cannot be interrupted: a 50 ms timeout fires only when the holder ends (~500 ms)",
    () =>
      Effect.gen(function* () {
        const sql = yield* stockSqlite(join(yield* tempDir, "stock.db"))
        const holding = yield* Deferred.make<void>()
        const holder = yield* Effect.fork(
          sql.withTransaction(
            Effect.zipRight(Deferred.succeed(holding, undefined), Effect.sleep("500 millis"))
          )
        )
        yield* Deferred.await(holding)
        const started = performance.now()
        const waited = yield* sql
          .withTransaction(Effect.void)
          .pipe(
            Effect.timeoutFail({ duration: Duration.millis(50), onTimeout: () => "timed out" as const }),
            Effect.flip
          )
        const elapsed = performance.now() - started
        expect(waited).toBe("timed out")
        expect(elapsed).toBeGreaterThanOrEqual(400)
        yield* Fiber.join(holder)
      }),
    timeout
  )
  // Keel's side — the same timeout fires on time — runs in Transaction.test.ts: "a fiber waiting
  // for the session can be timed out on time".
})

// --- 7. one TransactionConnection tag for every client ---------------------------------------

describe("hazard: every SqlClient shares one TransactionConnection tag", () => {
  it.scopedLive(
    "stock: a statement of client B issued inside client A's transaction runs on A's connection (lands in A's file)",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const a = yield* stockSqlite(join(dir, "a.db"))
        const b = yield* stockSqlite(join(dir, "b.db"))
        yield* a`CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)`
        yield* b`CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)`
        yield* a.withTransaction(b`INSERT INTO notes (id, text) VALUES (1, 'written by b')`)
        expect(yield* count(a, "notes")).toBe(1)
        expect(yield* count(b, "notes")).toBe(0)
      }),
    timeout
  )

  it.scopedLive(
    "Keel does not work around it: a plain statement of Keel client B inside a Keel transaction on A lands in A's file",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const a = yield* Layer.build(Database.layer(`sqlite:${join(dir, "a.db")}`))
        const b = yield* Layer.build(Database.layer(`sqlite:${join(dir, "b.db")}`))
        const sqlA = Context.get(a, SqlClient.SqlClient)
        const sqlB = Context.get(b, SqlClient.SqlClient)
        yield* sqlA`CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)`
        yield* sqlB`CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)`
        yield* Effect.provide(
          Transaction.immediate(sqlB`INSERT INTO notes (id, text) VALUES (1, 'via immediate')`),
          a
        )
        yield* sqlA.withTransaction(sqlB`INSERT INTO notes (id, text) VALUES (2, 'via withTransaction')`)
        // Pinned as it is today: Keel's transactions provide the shared tag too (so code written
        // against plain @effect/sql joins them), and B's plain writes are committed into A.
        expect(yield* count(sqlA, "notes")).toBe(2)
        expect(yield* count(sqlB, "notes")).toBe(0)
        // A Keel transaction on B itself still runs on B, even nested inside A's.
        yield* Effect.provide(
          Transaction.immediate(
            Effect.provide(Transaction.immediate(sqlB`INSERT INTO notes (id, text) VALUES (3, 'own')`), b)
          ),
          a
        )
        expect(yield* count(sqlB, "notes")).toBe(1)
      }),
    timeout
  )
})

// --- 8. IN-lists and parameter limits (SQLite, libSQL) ---------------------------------------

describe("hazard: IN-lists and the parameter limit on SQLite and libSQL", () => {
  it.scopedLive(
    "sql.in([]) compiles to IN () while sql.in(col, []) compiles to 1=0",
    () =>
      Effect.gen(function* () {
        const sql = yield* stockSqlite(join(yield* tempDir, "stock.db"))
        expect(sql`SELECT 1 WHERE 1 IN ${sql.in([])}`.compile()).toEqual(["SELECT 1 WHERE 1 IN ()", []])
        expect(sql`SELECT 1 WHERE ${sql.in("id", [])}`.compile()).toEqual(["SELECT 1 WHERE 1=0", []])
        // SQLite itself accepts an empty list (PostgreSQL does not: see below).
        expect(yield* sql`SELECT 1 AS one WHERE 1 IN ${sql.in([])}`).toEqual([])
      }),
    timeout
  )

  it.scopedLive(
    "a statement with 32767 bind parameters fails on SQLite and libSQL, 32766 works",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const clients = [
          yield* stockSqlite(join(dir, "stock.db")),
          yield* stockLibsql(`file:${join(dir, "stock-libsql.db")}`)
        ]
        for (const sql of clients) {
          const fits = yield* sql<{ n: number }>`SELECT COUNT(*) AS n WHERE 1 IN ${sql.in(ids(32766))}`
          expect(Number(fits[0]?.n)).toBe(1)
          const tooMany = yield* sql`SELECT 1 WHERE 1 IN ${sql.in(ids(32767))}`.pipe(Effect.flip)
          expect(driverMessage(tooMany)).toMatch(/too many SQL variables/)
        }
      }),
    timeout
  )

  it.scopedLive(
    "Keel: the backend's parameter limit is the measured one, and Batch.forEachChunk keeps larger inputs under it",
    () =>
      Effect.gen(function* () {
        expect(Backend.sqliteParameterLimit).toBe(32766)
        expect(Backend.postgresParameterLimit).toBe(65535)
        yield* onKeel(
          `sqlite:${join(yield* tempDir, "keel.db")}`,
          Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            const backend = yield* Backend.Backend
            expect(backend.parameterLimit).toBe(32766)
            let statements = 0
            const found = yield* Batch.forEachChunk(ids(40_000), { parametersPerItem: 1 }, (chunk) =>
              Effect.tap(sql<{ n: number }>`SELECT COUNT(*) AS n WHERE 1 IN ${sql.in(chunk)}`, () => {
                statements++
              })
            )
            expect(statements).toBe(2)
            expect(found.map((row) => Number(row.n))).toEqual([1, 0])
            const none = yield* Batch.forEachChunk([], { parametersPerItem: 1 }, (chunk) =>
              Effect.tap(sql`SELECT 1 WHERE 1 IN ${sql.in(chunk)}`, () => {
                statements++
              })
            )
            expect(none).toEqual([])
            expect(statements).toBe(2)
          })
        )
      }),
    timeout
  )
})

// --- 9. the stock Migrator -------------------------------------------------------------------

describe("hazard: the stock Migrator", () => {
  const runStock = Migrator.make({})
  const createTable = (sql: SqlClient.SqlClient, name: string) =>
    Effect.asVoid(sql`CREATE TABLE ${sql(name)} (id INTEGER)`)
  const tableExists = (sql: SqlClient.SqlClient, name: string) =>
    Effect.map(
      sql<{ n: number }>`SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ${name}`,
      (rows) => Number(rows[0]?.n ?? 0) === 1
    )

  it.scopedLive(
    "stock Migrator runs all pending migrations in one transaction: a failing third one (a defect) also undoes the first two",
    () =>
      Effect.gen(function* () {
        const sql = yield* stockSqlite(join(yield* tempDir, "stock.db"))
        const exit = yield* Effect.exit(
          runStock({
            loader: Migrator.fromRecord({
              "1_one": createTable(sql, "one"),
              "2_two": createTable(sql, "two"),
              "3_broken": Effect.asVoid(sql`CREATE TABLE broken (`)
            })
          }).pipe(Effect.provideService(SqlClient.SqlClient, sql))
        )
        expect(failuresOf(exit)).toEqual([])
        const defects = defectsOf(exit)
        expect(defects.map((defect) => Predicate.isTagged(defect, "MigrationError"))).toEqual([true])
        expect(yield* tableExists(sql, "one")).toBe(false)
        expect(yield* tableExists(sql, "two")).toBe(false)
        expect(yield* count(sql, "effect_sql_migrations")).toBe(0)
      }),
    timeout
  )

  it.scopedLive(
    "stock Migrator tracks only the highest applied id: a migration numbered below it is never applied",
    () =>
      Effect.gen(function* () {
        const sql = yield* stockSqlite(join(yield* tempDir, "stock.db"))
        const run = (migrations: Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>>) =>
          runStock({ loader: Migrator.fromRecord(migrations) }).pipe(
            Effect.provideService(SqlClient.SqlClient, sql)
          )
        expect(
          yield* run({ "1_one": createTable(sql, "one"), "3_three": createTable(sql, "three") })
        ).toEqual([
          [1, "one"],
          [3, "three"]
        ])
        const late = yield* run({
          "1_one": createTable(sql, "one"),
          "2_two": createTable(sql, "two"),
          "3_three": createTable(sql, "three")
        })
        expect(late).toEqual([])
        expect(yield* tableExists(sql, "two")).toBe(false)
      }),
    timeout
  )

  it.scopedLive(
    "stock Migrator treats a failure to record its bookkeeping as 'locked, skip': it succeeds having applied nothing",
    () =>
      Effect.gen(function* () {
        const sql = yield* stockSqlite(join(yield* tempDir, "stock.db"))
        yield* sql`CREATE TABLE effect_sql_migrations (
          migration_id integer PRIMARY KEY NOT NULL,
          created_at datetime NOT NULL DEFAULT current_timestamp,
          name VARCHAR(255) NOT NULL
        )`
        yield* sql`CREATE TRIGGER bookkeeping_fails BEFORE INSERT ON effect_sql_migrations
          BEGIN SELECT RAISE(ABORT, 'disk trouble'); END`
        const applied = yield* runStock({
          loader: Migrator.fromRecord({ "1_one": createTable(sql, "one") })
        }).pipe(Effect.provideService(SqlClient.SqlClient, sql))
        expect(applied).toEqual([])
        expect(yield* tableExists(sql, "one")).toBe(false)
      }),
    timeout
  )

  it.scopedLive(
    "Keel: each migration commits on its own (a failing third is a typed MigrationFailed after the first two), and every version is tracked",
    () =>
      Effect.gen(function* () {
        const migration = (version: number, name: string, statement: string): Migrations.Migration => ({
          version,
          name,
          sqlite: [statement],
          pg: [statement]
        })
        const one = migration(1, "one", "CREATE TABLE one (id INTEGER)")
        const two = migration(2, "two", "CREATE TABLE two (id INTEGER)")
        const broken = migration(3, "broken", "CREATE TABLE broken (")
        yield* onKeel(
          `sqlite:${join(yield* tempDir, "keel.db")}`,
          Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            const failed = yield* Migrations.run({ name: "hazards", migrations: [one, two, broken] }).pipe(
              Effect.flip
            )
            expect(failed._tag).toBe("MigrationFailed")
            if (failed._tag === "MigrationFailed") expect(failed.version).toBe(3)
            expect(yield* tableExists(sql, "one")).toBe(true)
            expect(yield* tableExists(sql, "two")).toBe(true)

            const gaps = (migrations: ReadonlyArray<Migrations.Migration>) =>
              Migrations.run({ name: "gaps", migrations })
            const first = migration(1, "first", "CREATE TABLE gap_1 (id INTEGER)")
            const second = migration(2, "second", "CREATE TABLE gap_2 (id INTEGER)")
            const third = migration(3, "third", "CREATE TABLE gap_3 (id INTEGER)")
            expect((yield* gaps([first, third])).map((applied) => applied.version)).toEqual([1, 3])
            expect((yield* gaps([first, second, third])).map((applied) => applied.version)).toEqual([2])
            expect(yield* tableExists(sql, "gap_2")).toBe(true)
          })
        )
      }),
    timeout
  )
})

// --- 10. driver error codes (SQLite, libSQL) -------------------------------------------------

describe("hazard: driver error codes reach SqlError.cause.code (SQLite, libSQL)", () => {
  const expectCodes = (sql: SqlClient.SqlClient, lock: Effect.Effect<HeldLock, never, Scope.Scope>) =>
    Effect.gen(function* () {
      yield* familyTables(sql)
      yield* sql`INSERT INTO parents (id) VALUES (1)`
      yield* sql`INSERT INTO items (id, tag) VALUES (1, 'taken')`
      const unique = yield* sql`INSERT INTO items (id, tag) VALUES (2, 'taken')`.pipe(Effect.flip)
      const primaryKey = yield* sql`INSERT INTO items (id, tag) VALUES (1, 'other')`.pipe(Effect.flip)
      const foreignKey = yield* sql`INSERT INTO strict_children (id, parent_id) VALUES (1, 999)`.pipe(
        Effect.flip
      )
      const held = yield* lock
      const busy = yield* sql`INSERT INTO parents (id) VALUES (2)`.pipe(Effect.flip)
      yield* held.release
      const seen = [unique, primaryKey, foreignKey, busy].map((error) => ({
        sqlError: error instanceof SqlError,
        code: driverCode(error),
        tag: DbError.classify(error)._tag
      }))
      expect(seen).toEqual([
        { sqlError: true, code: "SQLITE_CONSTRAINT_UNIQUE", tag: "UniqueViolation" },
        { sqlError: true, code: "SQLITE_CONSTRAINT_PRIMARYKEY", tag: "UniqueViolation" },
        { sqlError: true, code: "SQLITE_CONSTRAINT_FOREIGNKEY", tag: "ForeignKeyViolation" },
        { sqlError: true, code: "SQLITE_BUSY", tag: "Busy" }
      ])
    })

  it.scopedLive(
    "better-sqlite3 (stock sqlite-node) reports SQLITE_BUSY, SQLITE_CONSTRAINT_UNIQUE and SQLITE_CONSTRAINT_FOREIGNKEY; DbError.classify tags them",
    () =>
      Effect.gen(function* () {
        const file = join(yield* tempDir, "stock.db")
        const sql = yield* stockSqlite(file)
        yield* sql`PRAGMA busy_timeout = 0`
        yield* expectCodes(sql, holdSqliteLock(file))
      }),
    timeout
  )

  it.scopedLive(
    "libSQL (stock sql-libsql) reports SQLITE_BUSY, SQLITE_CONSTRAINT_UNIQUE and SQLITE_CONSTRAINT_FOREIGNKEY; DbError.classify tags them",
    () =>
      Effect.gen(function* () {
        const url = `file:${join(yield* tempDir, "stock.db")}`
        const sql = yield* stockLibsql(url)
        yield* expectCodes(sql, holdLibsqlLock(url))
      }),
    timeout
  )
})

// --- 8 and 10 on PostgreSQL ------------------------------------------------------------------

const postgresTables = (sql: SqlClient.SqlClient) =>
  Effect.gen(function* () {
    yield* sql`CREATE TABLE parents (id INTEGER PRIMARY KEY)`
    yield* sql`CREATE TABLE strict_children (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parents (id))`
    yield* sql`CREATE TABLE items (id INTEGER PRIMARY KEY, tag TEXT UNIQUE)`
    yield* sql`CREATE TABLE counters (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)`
    yield* sql`INSERT INTO parents (id) VALUES (1)`
    yield* sql`INSERT INTO items (id, tag) VALUES (1, 'taken')`
    yield* sql`INSERT INTO counters (id, value) VALUES (1, 0), (2, 0)`
  })

/** `sql.in([])` is rejected, 65535 parameters work, 65536 do not; unique and foreign-key codes. */
const postgresDialectHazards = (it: Vitest.MethodsNonLive<SqlClient.SqlClient, true>, label: string) => {
  it.effect(
    `${label}: sql.in([]) compiles to IN (), which is a syntax error; sql.in(col, []) compiles to 1=0`,
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        expect(sql`SELECT 1 WHERE 1 IN ${sql.in([])}`.compile()).toEqual(["SELECT 1 WHERE 1 IN ()", []])
        expect(sql`SELECT 1 WHERE ${sql.in("id", [])}`.compile()).toEqual(["SELECT 1 WHERE 1=0", []])
        const rejected = yield* sql`SELECT 1 AS one WHERE 1 IN ${sql.in([])}`.pipe(Effect.flip)
        expect(driverCode(rejected)).toBe("42601")
        expect(yield* sql`SELECT 1 AS one FROM items WHERE ${sql.in("id", [])}`).toEqual([])
      })
  )

  it.effect(`${label}: a statement with 65536 bind parameters fails, 65535 works`, () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const fits = yield* sql<{ one: number }>`SELECT 1 AS one WHERE 1 IN ${sql.in(ids(65535))}`
      expect(fits).toHaveLength(1)
      // The wire protocol counts parameters in an Int16: 65536 arrives as 0.
      const tooMany = yield* sql`SELECT 1 AS one WHERE 1 IN ${sql.in(ids(65536))}`.pipe(Effect.flip)
      expect(driverCode(tooMany)).toBe("08P01")
      expect(driverMessage(tooMany)).toMatch(/supplies 0 parameters/)
      expect(yield* sql<{ one: number }>`SELECT 1 AS one`).toHaveLength(1)
    })
  )

  it.effect(
    `${label}: unique and foreign-key violations arrive as 23505 / 23503; DbError.classify tags them`,
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const unique = yield* sql`INSERT INTO items (id, tag) VALUES (2, 'taken')`.pipe(Effect.flip)
        const foreignKey = yield* sql`INSERT INTO strict_children (id, parent_id) VALUES (1, 999)`.pipe(
          Effect.flip
        )
        expect(unique).toBeInstanceOf(SqlError)
        expect(foreignKey).toBeInstanceOf(SqlError)
        expect([driverCode(unique), driverCode(foreignKey)]).toEqual(["23505", "23503"])
        const classifiedUnique = DbError.classify(unique)
        const classifiedForeignKey = DbError.classify(foreignKey)
        expect(classifiedUnique._tag).toBe("UniqueViolation")
        expect(classifiedForeignKey._tag).toBe("ForeignKeyViolation")
        if (classifiedUnique._tag === "UniqueViolation")
          expect(classifiedUnique.constraint).toBe("items_tag_key")
      })
  )
}

/** The stock `@effect/sql-pg` client on a fresh database of the test server. */
const stockPostgres = Layer.unwrapScoped(
  Effect.map(TestDatabase.postgresDatabase, (url) => PgClient.layer({ url: Redacted.make(url) }))
)

describe.runIf(TestDatabase.kinds.includes("postgres"))(
  "hazard: PostgreSQL through stock @effect/sql-pg",
  () => {
    layer(stockPostgres, { timeout: 60_000, excludeTestServices: true })((it) => {
      it.effect("set up tables", () => Effect.flatMap(SqlClient.SqlClient, postgresTables))

      postgresDialectHazards(it, "pg")

      it.effect(
        "pg: a serialization failure arrives as 40001 and a deadlock as 40P01; DbError.classify tags them",
        () =>
          Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            const first = yield* sql.reserve
            const second = yield* sql.reserve
            const run = (connection: typeof first, statement: string) =>
              connection.executeUnprepared(statement, [], undefined)

            yield* run(first, "BEGIN ISOLATION LEVEL REPEATABLE READ")
            yield* run(first, "SELECT value FROM counters WHERE id = 1")
            yield* run(second, "UPDATE counters SET value = value + 1 WHERE id = 1")
            const serialization = yield* run(
              first,
              "UPDATE counters SET value = value + 1 WHERE id = 1"
            ).pipe(Effect.flip)
            yield* run(first, "ROLLBACK")
            expect(driverCode(serialization)).toBe("40001")
            expect(DbError.classify(serialization)._tag).toBe("SerializationFailure")

            // Detect the deadlock after 20 ms instead of the default second (superuser-only setting).
            yield* Effect.ignore(run(first, "SET deadlock_timeout = '20ms'"))
            yield* Effect.ignore(run(second, "SET deadlock_timeout = '20ms'"))
            yield* run(first, "BEGIN")
            yield* run(second, "BEGIN")
            yield* run(first, "UPDATE counters SET value = value + 1 WHERE id = 1")
            yield* run(second, "UPDATE counters SET value = value + 1 WHERE id = 2")
            const outcomes = yield* Effect.all(
              [
                Effect.either(run(first, "UPDATE counters SET value = value + 1 WHERE id = 2")),
                Effect.either(run(second, "UPDATE counters SET value = value + 1 WHERE id = 1"))
              ],
              { concurrency: 2 }
            )
            yield* run(first, "ROLLBACK")
            yield* run(second, "ROLLBACK")
            const victims = outcomes.flatMap((outcome) => (outcome._tag === "Left" ? [outcome.left] : []))
            expect(victims.map(driverCode)).toEqual(["40P01"])
            expect(victims.map((victim) => DbError.classify(victim)._tag)).toEqual(["Deadlock"])
          }).pipe(Effect.scoped)
      )
    })
  }
)

describe.runIf(TestDatabase.kinds.includes("pglite"))("hazard: PGlite through Keel's adapter", () => {
  // No stock PGlite client exists for Effect 3; the codes and limits are PGlite's own.
  layer(Database.layer("pglite:memory"), { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("set up tables", () => Effect.flatMap(SqlClient.SqlClient, postgresTables))

    postgresDialectHazards(it, "PGlite")
  })
})
