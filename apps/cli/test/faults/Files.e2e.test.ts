/**
 * `keel` over bad database files and a full disk: a DSN naming a file that is not SQLite, a
 * directory, a missing directory, a read-only file system, or a database whose Keel schema is
 * newer than this binary fails with exit 1 and one line that says what is wrong, writing nothing;
 * on a full disk a send fails the same way, a batch stores nothing, and sending works again once
 * space is freed.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as SqlClient from "@effect/sql/SqlClient"
import { Database } from "@keel/sql"
import { Files, Tmpfs } from "@keel/testkit"
import { Effect, Exit, Scope } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Keel from "../support/Keel.js"

const query = <A extends object>(
  dsn: string,
  statement: (sql: SqlClient.SqlClient) => Effect.Effect<ReadonlyArray<A>, unknown>
) =>
  Effect.runPromise(
    Effect.flatMap(SqlClient.SqlClient, statement).pipe(
      Effect.provide(Database.layer(dsn)),
      Effect.scoped,
      Effect.orDie
    )
  )

const noTmpfs = Tmpfs.unavailable()

describe("keel over bad database files [sqlite]", () => {
  let dir = ""
  beforeAll(async () => {
    await Keel.ensureBuilt()
    dir = mkdtempSync(join(tmpdir(), "keel-cli-files-"))
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it("not SQLite, a directory, a missing directory, a schema from the future: exit 1, one line, nothing written", async () => {
    writeFileSync(join(dir, "notes.db"), "these are my notes, not a database\n")
    mkdirSync(join(dir, "folder.db"))
    const future = join(dir, "future.db")
    Keel.ok(await Keel.keel(["--db", `sqlite:${future}`, "queue", "create", "files"]))
    await query(
      `sqlite:${future}`,
      (sql) =>
        sql`INSERT INTO keel_queue_migrations (version, name, checksum, applied_at) VALUES (99, 'from a newer Keel', 'x', 0)`
    )
    const before = Files.snapshot(dir)
    const cases = [
      ["notes.db", /notes\.db is not a SQLite database/],
      ["folder.db", /folder\.db is a directory, not a database file/],
      [join("missing", "keel.db"), /the directory .*missing does not exist/],
      ["future.db", /queue migration 99 .*does not know/]
    ] as const
    for (const [file, pattern] of cases) {
      for (const args of [
        ["queue", "list"],
        ["queue", "send", "files", '{"n":1}']
      ]) {
        expect(Keel.failure(await Keel.keel(["--db", `sqlite:${join(dir, file)}`, ...args]), 1)).toMatch(
          pattern
        )
      }
    }
    expect(Files.snapshot(dir)).toEqual(before)
  })
})

describe.skipIf(noTmpfs !== undefined)("keel on a read-only or full file system [sqlite]", () => {
  let scope: Scope.CloseableScope
  let mount: Tmpfs.Mount
  beforeAll(async () => {
    await Keel.ensureBuilt()
    scope = Effect.runSync(Scope.make())
    mount = await Effect.runPromise(Scope.extend(Tmpfs.mount(8 * 1024 * 1024), scope))
  })
  afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))

  it("read-only: exit 1, one line naming the read-only file system, nothing written", async () => {
    const db = `sqlite:${join(mount.dir, "keel.db")}`
    Keel.ok(await Keel.keel(["--db", db, "queue", "create", "files"]))
    await Effect.runPromise(mount.readOnly(true))
    try {
      const before = Files.snapshot(mount.dir)
      for (const args of [
        ["queue", "list"],
        ["queue", "send", "files", '{"n":1}']
      ]) {
        expect(Keel.failure(await Keel.keel(["--db", db, ...args]), 1)).toMatch(
          /keel\.db is on a read-only file system/
        )
      }
      expect(Files.snapshot(mount.dir)).toEqual(before)
    } finally {
      await Effect.runPromise(mount.readOnly(false))
    }
  })

  it("full: a send fails with one line, a batch stores nothing, the file stays intact, sending resumes once space is freed", async () => {
    const db = `sqlite:${join(mount.dir, "keel.db")}`
    const filler = join(mount.dir, "filler")
    writeFileSync(filler, Buffer.alloc(Math.max(0, mount.free() - 256 * 1024)))
    const pad = "x".repeat(8_000)
    let sent = 0
    let failed: Keel.Result | undefined
    for (let i = 0; i < 100 && failed === undefined; i++) {
      const result = await Keel.keel(["--db", db, "queue", "send", "files", JSON.stringify({ i, pad })])
      if (result.code === 0) sent++
      else failed = result
    }
    if (failed === undefined) throw new Error("the disk never filled")
    expect(Keel.failure(failed, 1)).toMatch(/database or disk is full/)
    const count = async () =>
      (await query<{ n: number }>(db, (sql) => sql`SELECT COUNT(*) AS n FROM keel_queue_messages`))[0]?.n
    expect(await count()).toBe(sent)
    const lines = Array.from({ length: 50 }, (_, i) => JSON.stringify({ batch: i, pad })).join("\n")
    expect(
      Keel.failure(await Keel.keel(["--db", db, "queue", "send-batch", "files"], { input: `${lines}\n` }), 1)
    ).toMatch(/database or disk is full/)
    expect(await count()).toBe(sent)
    expect(await query<{ integrity_check: string }>(db, (sql) => sql`PRAGMA integrity_check`)).toEqual([
      { integrity_check: "ok" }
    ])
    rmSync(filler)
    Keel.ok(await Keel.keel(["--db", db, "queue", "send", "files", '{"after":true}']))
    expect(await count()).toBe(sent + 1)
  })
})
