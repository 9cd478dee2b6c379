/**
 * The server over bad database files and a full disk (real files, real mounts):
 * - a DSN naming a file that is not SQLite, a directory, a file on a read-only file system, a
 *   missing directory, or a database whose Keel schema is newer than this binary: the server does
 *   not start; it exits 1 with one line saying what is wrong, and writes nothing;
 * - SQLite on a small tmpfs that fills up: sends fail at once with a typed 503 (the disk is full),
 *   the server stays up, the database stays intact (`PRAGMA integrity_check`), and sends succeed
 *   again once space is freed; every acknowledged send is stored once.
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { Database } from "@keel/sql"
import { Files, Processes, TestDatabase, Tmpfs } from "@keel/testkit"
import { Duration, Effect } from "effect"
import { expectOk } from "../support/Expect.js"
import * as TestServer from "../support/TestServer.js"

/** Runs the server on `dsn` until it exits by itself. */
const runServer = (dsn: string, dir: string) =>
  Processes.run({
    script: TestServer.mainScript,
    env: { KEEL_DB: dsn, KEEL_PORT: "0", KEEL_HOST: "127.0.0.1", XDG_DATA_HOME: dir }
  })

/** A migrated Keel database at `file` (the server's own schema), made by the library. */
const migrated = (file: string) =>
  Effect.gen(function* () {
    const server = yield* TestServer.start({ kind: "sqlite", dir: join(file, ".."), dsn: `sqlite:${file}` })
    expectOk(yield* TestServer.request(server, "POST", "/queues", { body: { name: "files" } }), 201)
    yield* server.child.kill("SIGTERM")
    expect((yield* server.child.exited).code).toBe(0)
  }).pipe(Effect.scoped)

const sql = <A extends object>(
  dsn: string,
  query: (sql: SqlClient.SqlClient) => Effect.Effect<ReadonlyArray<A>, unknown>
) =>
  Effect.flatMap(SqlClient.SqlClient, query).pipe(
    Effect.provide(Database.layer(dsn)),
    Effect.scoped,
    Effect.orDie
  )

const expectOneLine = (exited: Processes.Exited, pattern: RegExp) => {
  expect(exited.code, exited.stderr).toBe(1)
  const lines = exited.stderr.trimEnd().split("\n")
  expect(lines, exited.stderr).toHaveLength(1)
  expect(lines[0]).toMatch(/^Keel stopped: /)
  expect(lines[0]).toMatch(pattern)
}

const noTmpfs = Tmpfs.unavailable()

describe("the server over bad database files [sqlite]", () => {
  it.scopedLive(
    "a file that is not SQLite, a directory, a missing directory: exit 1, one line, nothing written",
    () =>
      Effect.gen(function* () {
        const { dir } = yield* Effect.orDie(TestDatabase.fresh("sqlite"))
        writeFileSync(join(dir, "notes.db"), "these are my notes, not a database\n")
        mkdirSync(join(dir, "folder.db"))
        const before = Files.snapshot(dir)
        const cases = [
          [`sqlite:${join(dir, "notes.db")}`, /notes\.db is not a SQLite database/],
          [`sqlite:${join(dir, "folder.db")}`, /folder\.db is a directory, not a database file/],
          [`sqlite:${join(dir, "missing", "keel.db")}`, /the directory .*missing does not exist/]
        ] as const
        for (const [dsn, pattern] of cases) expectOneLine(yield* runServer(dsn, dir), pattern)
        expect(Files.snapshot(dir)).toEqual(before)
      })
  )

  it.scopedLive(
    "a database whose Keel schema is newer than this binary: exit 1, one line, nothing written",
    () =>
      Effect.gen(function* () {
        const { dir } = yield* Effect.orDie(TestDatabase.fresh("sqlite"))
        const file = join(dir, "keel.db")
        yield* migrated(file)
        yield* sql(
          `sqlite:${file}`,
          (sql) =>
            sql`INSERT INTO keel_queue_migrations (version, name, checksum, applied_at) VALUES (99, 'from a newer Keel', 'x', 0)`
        )
        const before = Files.snapshot(dir)
        expectOneLine(yield* runServer(`sqlite:${file}`, dir), /queue migration 99 .*does not know/)
        expect(Files.snapshot(dir)).toEqual(before)
      })
  )

  it.scopedLive.skipIf(noTmpfs !== undefined)(
    "a database on a read-only file system: exit 1, one line, nothing written",
    () =>
      Effect.gen(function* () {
        const mount = yield* Tmpfs.mount(8 * 1024 * 1024)
        const file = join(mount.dir, "keel.db")
        yield* migrated(file)
        yield* mount.readOnly(true)
        const before = Files.snapshot(mount.dir)
        expectOneLine(yield* runServer(`sqlite:${file}`, mount.dir), /keel\.db is on a read-only file system/)
        expect(Files.snapshot(mount.dir)).toEqual(before)
        yield* mount.readOnly(false)
      })
  )
})

describe.skipIf(noTmpfs !== undefined)("the server on a full disk [sqlite]", () => {
  it.scopedLive(
    "sends fail at once with a typed 503, the database stays intact, sending resumes once space is freed",
    () =>
      Effect.gen(function* () {
        const mount = yield* Tmpfs.mount(8 * 1024 * 1024)
        const file = join(mount.dir, "keel.db")
        const dsn = `sqlite:${file}`
        const server = yield* TestServer.start({ kind: "sqlite", dir: mount.dir, dsn })
        expectOk(yield* TestServer.request(server, "POST", "/queues", { body: { name: "files" } }), 201)
        // Leave the database 256 KiB to grow into.
        const filler = join(mount.dir, "filler")
        writeFileSync(filler, Buffer.alloc(Math.max(0, mount.free() - 256 * 1024)))
        const acknowledged: Array<string> = []
        const send = (key: string) =>
          Effect.map(
            Effect.timed(
              TestServer.request(server, "POST", "/queues/files/messages", {
                body: { payload: { key, pad: "x".repeat(8_000) } }
              })
            ),
            ([took, reply]) => {
              if (reply.status === 201) acknowledged.push(key)
              return { ms: Duration.toMillis(took), reply }
            }
          )
        let full: TestServer.Reply | undefined
        for (let i = 0; i < 200 && full === undefined; i++) {
          const { reply } = yield* send(`before-${i}`)
          if (reply.status !== 201) full = reply
        }
        expect(full?.status, full?.text).toBe(503)
        expect(full?.headers.get("retry-after")).toBe("1")
        // Typed: the store failed (at a statement or at COMMIT, which provably did not apply) because the disk is full.
        expect(full?.json).toMatchObject({ _tag: "QueueStoreError" })
        expect(full?.text).toContain('"code":"SQLITE_FULL"')
        expect(full?.text).not.toContain("OutcomeUnknown")
        const whileFull = []
        for (let i = 0; i < 20; i++) whileFull.push(yield* send(`full-${i}`))
        expect(whileFull.map(({ reply }) => reply.status)).toEqual(Array(20).fill(503))
        expect(Math.max(...whileFull.map(({ ms }) => ms))).toBeLessThan(2_000)
        expectOk(yield* TestServer.request(server, "GET", "/health"))

        rmSync(filler)
        const after = yield* send("after")
        expect(after.reply.status, after.reply.text).toBe(201)
        yield* server.child.kill("SIGTERM")
        expect((yield* server.child.exited).code).toBe(0)

        const integrity = yield* sql<{ integrity_check: string }>(dsn, (sql) => sql`PRAGMA integrity_check`)
        expect(integrity).toEqual([{ integrity_check: "ok" }])
        const rows = yield* sql<{ payload: string }>(
          dsn,
          (sql) => sql`SELECT payload FROM keel_queue_messages`
        )
        const stored = rows.map((row) => (JSON.parse(row.payload) as { key: string }).key).sort()
        expect(stored).toEqual([...acknowledged].sort())
        console.log(
          `disk full: ${acknowledged.length - 1} sends filled 256 KiB; 20 sends while full all 503 (slowest ${Math.round(Math.max(...whileFull.map(({ ms }) => ms)))} ms); integrity ok; sending resumed after freeing space`
        )
      })
  )
})
