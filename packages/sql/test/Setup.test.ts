import { pathToFileURL } from "node:url"
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it, layer } from "@effect/vitest"
import { Database, Transaction } from "@keel/sql"
import * as Libsql from "@libsql/client"
import BetterSqlite3 from "better-sqlite3"
import { Duration, Effect, Either, Layer, Predicate, type Scope } from "effect"
import * as TestDatabase from "./support/TestDatabase.js"

/** The first column of the first row a PRAGMA returns, as text (`wal`, `1`, `20`). */
const firstValue = (rows: ReadonlyArray<Record<string, unknown>>): string => {
  const row = rows[0]
  return Predicate.isRecord(row) ? String(Object.values(row)[0]).toLowerCase() : "no row"
}

/** The settings Keel's guarantees rest on, and its page cache bound, as the connection reports them. */
const pragmas = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const read = (statement: Effect.Effect<ReadonlyArray<Record<string, unknown>>, unknown>) =>
    Effect.map(statement, firstValue)
  return yield* Effect.all({
    journal_mode: read(sql`PRAGMA journal_mode`),
    foreign_keys: read(sql`PRAGMA foreign_keys`),
    busy_timeout: read(sql`PRAGMA busy_timeout`),
    synchronous: read(sql`PRAGMA synchronous`),
    cache_size: read(sql`PRAGMA cache_size`)
  })
})

/** Keel's settings on every SQLite and local libSQL connection (a 2,000 KiB page cache, not 16 MB). */
const expected = {
  journal_mode: "wal",
  foreign_keys: "1",
  busy_timeout: "20",
  synchronous: "1",
  cache_size: "-2000"
}

/** The file the client's `main` database lives in, as SQLite reports it. */
const databaseFile = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ name: string; file: string }>`PRAGMA database_list`
  const main = rows.find((row) => row.name === "main")
  expect(main?.file).toBeTruthy()
  return main?.file ?? ""
})

/** A second connection to the same file, outside Keel, that can hold the write lock. */
interface OtherConnection {
  readonly exec: (statement: "BEGIN IMMEDIATE" | "COMMIT") => Effect.Effect<void>
  /** The ids in `busy_items` that this other connection sees: only committed rows. */
  readonly committedIds: Effect.Effect<ReadonlyArray<number>>
}

const ids = (rows: ReadonlyArray<unknown>): ReadonlyArray<number> =>
  rows.map((row) => (Predicate.isRecord(row) ? Number(row.id) : Number.NaN))

/**
 * Opens the other connection with the same driver as the client under test, closed with the
 * scope: better-sqlite3 for SQLite, the libSQL SDK for libSQL. (A better-sqlite3 connection and a
 * libSQL connection on one file do not see each other's locks, so the holder must match.)
 */
const otherConnection = (
  kind: "sqlite" | "libsql",
  file: string
): Effect.Effect<OtherConnection, never, Scope.Scope> =>
  kind === "sqlite"
    ? Effect.map(
        Effect.acquireRelease(
          Effect.sync(() => new BetterSqlite3(file)),
          (connection) => Effect.sync(() => connection.close())
        ),
        (connection) => ({
          exec: (statement) => Effect.sync(() => void connection.exec(statement)),
          committedIds: Effect.sync(() =>
            ids(connection.prepare("SELECT id FROM busy_items ORDER BY id").all())
          )
        })
      )
    : Effect.map(
        Effect.acquireRelease(
          Effect.sync(() => Libsql.createClient({ url: pathToFileURL(file).href })),
          (client) => Effect.sync(() => client.close())
        ),
        (client) => ({
          exec: (statement) => Effect.asVoid(Effect.promise(() => client.execute(statement))),
          committedIds: Effect.map(
            Effect.promise(() => client.execute("SELECT id FROM busy_items ORDER BY id")),
            (result) => ids(result.rows)
          )
        })
      )

const count = (table: "setup_items" | "busy_items") =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ n: number }>`SELECT COUNT(*) AS n FROM ${sql(table)}`
    return Number(rows[0]?.n ?? 0)
  })

const sqliteKinds = TestDatabase.kinds.filter(
  (kind): kind is "sqlite" | "libsql" => kind === "sqlite" || kind === "libsql"
)

for (const kind of sqliteKinds) {
  describe(`Setup [${kind}]`, () => {
    layer(TestDatabase.layer(kind), { timeout: 60_000, excludeTestServices: true })((it) => {
      it.effect(
        "the connection runs with WAL, foreign keys on, busy_timeout=20, synchronous=NORMAL and a 2 MB page cache",
        () =>
          Effect.gen(function* () {
            expect(yield* pragmas).toEqual(expected)
          })
      )

      it.effect("the pragmas still hold inside and after several transactions", () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          yield* sql`CREATE TABLE setup_items (id INTEGER PRIMARY KEY)`
          for (let id = 1; id <= 5; id++) {
            const inside = yield* Transaction.immediate(
              Effect.zipRight(sql`INSERT INTO setup_items (id) VALUES (${id})`, pragmas)
            )
            expect(inside).toEqual(expected)
          }
          // The client's own withTransaction (what @effect/sql's Migrator uses) keeps them too.
          yield* sql.withTransaction(sql`INSERT INTO setup_items (id) VALUES (${6})`)
          yield* Transaction.immediate(
            Effect.zipRight(
              sql`INSERT INTO setup_items (id) VALUES (${7})`,
              Effect.fail("roll back" as const)
            )
          ).pipe(Effect.flip)
          expect(yield* pragmas).toEqual(expected)
          expect(yield* count("setup_items")).toBe(6)
        })
      )

      it.scoped(
        "a busy BEGIN IMMEDIATE is a typed Busy error within a second, and the client stays usable",
        () =>
          Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            yield* sql`CREATE TABLE busy_items (id INTEGER PRIMARY KEY)`
            const other = yield* otherConnection(kind, yield* databaseFile)
            yield* other.exec("BEGIN IMMEDIATE")

            const started = Date.now()
            const error = yield* Transaction.immediate(sql`INSERT INTO busy_items (id) VALUES (${1})`).pipe(
              Effect.timeoutFail({ duration: Duration.seconds(5), onTimeout: () => "hung" as const }),
              Effect.flip
            )
            expect(Date.now() - started).toBeLessThan(1_000)
            expect(error).not.toBe("hung")
            expect(Predicate.isTagged(error, "Busy")).toBe(true)

            yield* other.exec("COMMIT")
            yield* Transaction.immediate(sql`INSERT INTO busy_items (id) VALUES (${2})`)
            yield* sql`INSERT INTO busy_items (id) VALUES (${3})`
            expect(yield* count("busy_items")).toBe(2)
            // Committed for real: another connection sees both writes.
            expect(yield* other.committedIds).toEqual([2, 3])
            expect(yield* pragmas).toEqual(expected)
          })
      )
    })

    describe("an invalid busy timeout is refused at start-up", () => {
      const cases: ReadonlyArray<readonly [string, Duration.DurationInput]> = [
        ["70 seconds", Duration.seconds(70)],
        ["-5 ms", -5],
        ["forever", Duration.infinity]
      ]
      for (const [label, busyTimeout] of cases) {
        it.scopedLive(`a busy timeout of ${label} fails with SetupFailed naming busy_timeout`, () =>
          Effect.gen(function* () {
            const info = yield* TestDatabase.fresh(kind)
            const opened = yield* Effect.either(Layer.build(Database.layer(info.dsn, { busyTimeout })))
            expect(Either.isLeft(opened), "the database opened with an invalid busy timeout").toBe(true)
            if (Either.isLeft(opened)) {
              expect(opened.left._tag).toBe("SetupFailed")
              if (opened.left._tag === "SetupFailed") expect(opened.left.setting).toBe("busy_timeout")
              expect(opened.left.message).toContain("busy_timeout")
            }
          })
        )
      }
    })
  })
}

if (TestDatabase.kinds.includes("postgres")) {
  describe("Setup [postgres]", () => {
    it.scopedLive(
      "a database whose session_replication_role defaults to replica (no foreign keys) is refused with SetupFailed",
      () =>
        Effect.gen(function* () {
          const url = yield* TestDatabase.postgresDatabase
          const name = decodeURIComponent(new URL(url).pathname.slice(1))
          // Before: the fresh database opens.
          yield* Layer.build(Database.layer(url)).pipe(Effect.scoped)
          yield* Effect.provide(
            Effect.flatMap(
              SqlClient.SqlClient,
              (sql) => sql`ALTER DATABASE ${sql(name)} SET session_replication_role = replica`
            ),
            Database.layer(TestDatabase.postgresAdminUrl, { maxConnections: 1 })
          )
          const error = yield* Layer.build(Database.layer(url)).pipe(Effect.scoped, Effect.flip)
          expect(error._tag).toBe("SetupFailed")
          if (error._tag === "SetupFailed") {
            expect(error.setting).toContain("session_replication_role")
            expect(error.actual).toBe("replica")
          }
        })
    )
  })
}
