/**
 * `pnpm --filter @keel/bench profile:overhead [DSN]`: what one statement and one write
 * transaction cost through Keel's `SqlClient` (Effect, `@effect/sql`, Keel's session) next to the
 * raw driver doing the same — the per-statement floor under every Keel row. SQLite by default;
 * pass a PostgreSQL URL to measure that instead. Not a benchmark row: it prints µs per operation.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Backend } from "@keel/sql"
import * as Database from "@keel/sql/Database"
import * as Transaction from "@keel/sql/Transaction"
import Sqlite from "better-sqlite3"
import * as Effect from "effect/Effect"
import * as ManagedRuntime from "effect/ManagedRuntime"
import pg from "pg"

const dir = mkdtempSync(join(tmpdir(), "keel-bench-overhead-"))
const dsn = process.argv[2] ?? `sqlite:${join(dir, "overhead.db")}`
const operations = 3000

const report = (name: string, started: number) =>
  console.log(
    `${name.padEnd(48)} ${(((performance.now() - started) * 1000) / operations).toFixed(1).padStart(8)} µs/op`
  )

const timeAsync = async (name: string, once: () => Promise<unknown>) => {
  for (let i = 0; i < 300; i++) await once()
  const started = performance.now()
  for (let i = 0; i < operations; i++) await once()
  report(name, started)
}

const runtime = ManagedRuntime.make(Database.layer(dsn))
try {
  const sql = await runtime.runPromise(SqlClient.SqlClient)
  const timeEffect = async (
    name: string,
    once: Effect.Effect<unknown, unknown, SqlClient.SqlClient | Backend.Backend>
  ) => {
    await runtime.runPromise(Effect.repeatN(once, 299))
    const started = performance.now()
    await runtime.runPromise(Effect.repeatN(once, operations - 1))
    report(name, started)
  }
  await timeAsync("keel: runPromise(Effect.void)", () => runtime.runPromise(Effect.void))
  await timeAsync("keel: runPromise(SELECT 1)", () => runtime.runPromise(sql`SELECT 1`))
  await timeEffect("keel: SELECT 1 (inside one effect)", sql`SELECT 1`)
  await timeEffect("keel: Transaction.immediate(SELECT 1)", Transaction.immediate(sql`SELECT 1`))
  await timeEffect(
    "keel: Transaction.single(SELECT 1)",
    Effect.suspend(() => Transaction.single(sql`SELECT 1`))
  )
  if (dsn.startsWith("sqlite:")) {
    const db = new Sqlite(dsn.slice("sqlite:".length))
    const select = db.prepare("SELECT 1")
    const begin = db.prepare("BEGIN IMMEDIATE")
    const commit = db.prepare("COMMIT")
    await timeAsync("raw: SELECT 1", async () => select.get())
    await timeAsync("raw: BEGIN IMMEDIATE; SELECT 1; COMMIT", async () => {
      begin.run()
      select.get()
      commit.run()
    })
    db.close()
  } else {
    const client = new pg.Client({ connectionString: dsn })
    await client.connect()
    await timeAsync("raw: SELECT 1", () => client.query("SELECT 1"))
    await timeAsync("raw: BEGIN; SELECT 1; COMMIT", async () => {
      await client.query("BEGIN")
      await client.query("SELECT 1")
      await client.query("COMMIT")
    })
    await client.end()
  }
} finally {
  await runtime.dispose()
  rmSync(dir, { recursive: true, force: true })
}
