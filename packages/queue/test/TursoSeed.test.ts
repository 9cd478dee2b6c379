/**
 * Seed 000 where it happened: the Turso engine (`@tursodatabase/database`), on the version the
 * phantom duplicates were reported on (0.4.4, the devDependency alias `turso-0.4.4`) and on the
 * current one. 4 workers × 250 sends, busy timeout 0, contending for one file.
 *
 * - The naive pattern — a blind retry of an autocommit `INSERT … RETURNING` on "database is
 *   locked" — is run and measured on 0.4.4 (WAL, and MVCC as in turso #5422): no send may be lost;
 *   the rows beyond the sends are printed.
 * - Keel's send: keyed (`dedupKey`, retried) and unkeyed (a lock error after the write is a typed
 *   `SendOutcomeUnknown`, never retried) leave exactly one row per acknowledged send and never two
 *   for one send, on 0.4.4 and on the current engine (workers are connections of this process: a
 *   0.4.4 file opens in one process only), and with multiprocess_wal across 4 processes.
 *
 * 0.4.4 cannot create Keel's schema (no triggers, CHECK or WITHOUT ROWID): the current engine
 * migrates the file first, and 0.4.4 then opens a schema with nothing left to migrate.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { Queue } from "@keel/queue"
import { Database, type TursoClient } from "@keel/sql"
import * as TursoEngines from "@keel/sql/test/TursoEngines"
import { Processes, TestDatabase } from "@keel/testkit"
import { Context, Effect, Either, Layer } from "effect"
import { fixture } from "./support/QueueTest.js"

const workers = 4
const sendsPerWorker = 250
const sends = workers * sendsPerWorker
const selected = TestDatabase.kinds.includes("turso")

/** What each send of a run ended as, by key (`<worker>-<i>`). */
interface Outcomes {
  readonly acked: ReadonlyArray<string>
  readonly unknown: ReadonlyArray<string>
  readonly failed: ReadonlyArray<string>
}

/** Rows per message key in the queue's table. */
const rowsByKey = (sql: SqlClient.SqlClient) =>
  Effect.map(
    sql<{
      payload: string
      n: number
    }>`SELECT payload, COUNT(*) AS n FROM keel_queue_messages GROUP BY payload`,
    (rows) =>
      new Map(rows.map((row) => [String((JSON.parse(row.payload) as { key: string }).key), Number(row.n)]))
  )

/**
 * The guarantee: no send has two rows; every acknowledged send has one; a send that failed
 * otherwise (provably rolled back) has none; an unknown one has at most one.
 */
const expectOneRowPerAcknowledgedSend = (outcomes: Outcomes, rows: ReadonlyMap<string, number>) => {
  expect(outcomes.acked.length + outcomes.unknown.length + outcomes.failed.length).toBe(sends)
  expect([...rows.entries()].filter(([, n]) => n > 1)).toEqual([])
  expect(outcomes.acked.filter((key) => rows.get(key) !== 1)).toEqual([])
  expect(outcomes.failed.filter((key) => rows.has(key))).toEqual([])
  const total = [...rows.values()].reduce((sum, n) => sum + n, 0)
  expect(total).toBeLessThanOrEqual(outcomes.acked.length + outcomes.unknown.length)
  expect(total).toBeGreaterThanOrEqual(outcomes.acked.length)
}

/**
 * 0.4.4 refuses to open a file whose schema has a CHECK constraint (the archive's `dead` flag), so
 * for it each such table is rebuilt without it. Sends never touch the archive; the test database
 * is thrown away.
 */
const withoutCheckConstraints = (sql: SqlClient.SqlClient) =>
  Effect.gen(function* () {
    const tables = yield* sql<{ name: string; sql: string }>`SELECT name, sql FROM sqlite_master
      WHERE type = 'table' AND instr(sql, 'CHECK') > 0`
    for (const table of tables) {
      const unchecked = table.sql.replace(/\s+CHECK\s*\([^()]*\([^()]*\)\)/g, "")
      yield* sql`DROP TABLE ${sql(table.name)}`
      yield* sql.unsafe(unchecked)
    }
  })

/** A Keel queue over `dsn` on `engine` (the queue's migrations run first, on whatever engine). */
const queueOn = (dsn: string, tursoEngine?: TursoClient.Engine) =>
  Layer.provideMerge(Queue.layer(), Database.layer(dsn, { tursoEngine }))

/** One worker's sends through its own Keel database (its own engine connection). */
const worker = (queues: Queue.Service, name: string, index: number, keyed: boolean) =>
  Effect.gen(function* () {
    const acked: Array<string> = []
    const unknown: Array<string> = []
    const failed: Array<string> = []
    for (let i = 0; i < sendsPerWorker; i++) {
      const key = `${index}-${i}`
      const sent = yield* Effect.either(queues.send(name, { key }, keyed ? { dedupKey: key } : {}))
      if (Either.isRight(sent)) acked.push(key)
      else if (sent.left._tag === "SendOutcomeUnknown") unknown.push(key)
      else failed.push(key)
    }
    return { acked, unknown, failed }
  })

const merged = (all: ReadonlyArray<Outcomes>): Outcomes => ({
  acked: all.flatMap((one) => one.acked),
  unknown: all.flatMap((one) => one.unknown),
  failed: all.flatMap((one) => one.failed)
})

/** Keel's sends from `workers` connections of this process on `engine`; the outcomes and the rows. */
const keelInProcess = (engine: TursoClient.Engine, keyed: boolean) =>
  Effect.scoped(
    Effect.gen(function* () {
      const info = yield* TestDatabase.fresh("turso")
      const name = `seed-${keyed ? "keyed" : "unkeyed"}`
      // The current engine migrates and creates the queue; then each worker opens its own connection.
      yield* Effect.provide(
        Effect.gen(function* () {
          yield* (yield* Queue.Queue).createQueue(name)
          if (engine !== (yield* TursoEngines.current))
            yield* withoutCheckConstraints(yield* SqlClient.SqlClient)
        }),
        queueOn(info.dsn)
      )
      const contexts = yield* Effect.forEach(
        Array.from({ length: workers }, (_, index) => index),
        () => Layer.build(queueOn(info.dsn, engine))
      )
      const outcomes = yield* Effect.forEach(
        contexts,
        (context, index) => worker(Context.get(context, Queue.Queue), name, index, keyed),
        { concurrency: "unbounded" }
      )
      const [first] = contexts
      if (first === undefined) return yield* Effect.dieMessage("no worker")
      const rows = yield* rowsByKey(Context.get(first, SqlClient.SqlClient))
      return { outcomes: merged(outcomes), rows }
    })
  )

describe.skipIf(!selected)("seed 000 on the Turso engine", () => {
  for (const journal of ["wal", "experimental_mvcc"] as const) {
    it.scopedLive(
      `[0.4.4, ${journal}] the naive pattern (blind retry of INSERT … RETURNING on locked) loses no send; rows beyond sends are printed`,
      () =>
        Effect.gen(function* () {
          const Engine = yield* TursoEngines.seed000
          const info = yield* TestDatabase.fresh("turso")
          const file = info.dsn.slice("turso:".length)
          const result = yield* Effect.promise(async () => {
            const setup = await Engine.connect(file)
            const exec = async (db: TursoClient.EngineDatabase, sql: string, ...params: Array<unknown>) => {
              const statement = await db.prepare(sql)
              try {
                return await statement.all(...params)
              } finally {
                statement.close()
              }
            }
            await exec(setup, `PRAGMA journal_mode = '${journal}'`)
            await exec(setup, "CREATE TABLE m (id INTEGER PRIMARY KEY AUTOINCREMENT, payload TEXT NOT NULL)")
            const connections = await Promise.all(Array.from({ length: workers }, () => Engine.connect(file)))
            let locked = 0
            await Promise.all(
              connections.map(async (db, index) => {
                for (let i = 0; i < sendsPerWorker; i++) {
                  for (let attempt = 0; attempt < 1_000; attempt++) {
                    try {
                      await exec(db, "INSERT INTO m (payload) VALUES (?) RETURNING id", `${index}-${i}`)
                      break
                    } catch (error) {
                      if (!(error instanceof Error && /database is locked/.test(error.message))) throw error
                      locked++
                      await new Promise((resolve) => setImmediate(resolve))
                    }
                  }
                }
              })
            )
            const [counted] = (await exec(
              setup,
              "SELECT COUNT(*) AS n, COUNT(DISTINCT payload) AS d FROM m"
            )) as Array<{
              n: number
              d: number
            }>
            await Promise.all([setup, ...connections].map((db) => db.close()))
            return { rows: Number(counted?.n), distinct: Number(counted?.d), locked }
          })
          console.log(
            `seed 000, naive [0.4.4, ${journal}]: ${result.rows} rows for ${sends} sends (${result.rows - sends} phantom), ${result.locked} locked errors retried`
          )
          expect(result.distinct).toBe(sends)
          expect(result.rows).toBeGreaterThanOrEqual(sends)
        }),
      120_000
    )
  }

  for (const [version, engine] of TursoEngines.engines) {
    for (const keyed of [true, false]) {
      it.live(
        `[${version}] Keel's ${keyed ? "keyed send (retried)" : "unkeyed send (SendOutcomeUnknown, never retried)"} leaves one row per acknowledged send, from ${workers} connections`,
        () =>
          Effect.gen(function* () {
            const { outcomes, rows } = yield* keelInProcess(yield* engine, keyed)
            console.log(
              `seed 000, Keel [${version}, ${keyed ? "keyed" : "unkeyed"}]: ${outcomes.acked.length} acknowledged, ${outcomes.unknown.length} unknown, ${outcomes.failed.length} failed`
            )
            expectOneRowPerAcknowledgedSend(outcomes, rows)
          }),
        180_000
      )
    }
  }

  for (const keyed of [true, false]) {
    it.scopedLive(
      `[0.7.2, multiprocess_wal] Keel's ${keyed ? "keyed" : "unkeyed"} send from ${workers} processes leaves one row per acknowledged send`,
      () =>
        Effect.gen(function* () {
          const info = yield* TestDatabase.fresh("turso")
          const dsn = `${info.dsn}?multiprocess=1`
          const name = "seed-processes"
          const queue = yield* Layer.build(queueOn(dsn))
          yield* Context.get(queue, Queue.Queue).createQueue(name)
          const startAt = Processes.startAt()
          const exits = yield* Processes.runMany(workers, () => ({
            script: fixture("turso-sender"),
            args: [dsn, name, String(sendsPerWorker), keyed ? "keyed" : "unkeyed"],
            env: { KEEL_START_AT: startAt }
          }))
          const lines = exits.flatMap((exit) => exit.stdout.split("\n"))
          for (const exit of exits)
            expect({ code: exit.code, stderr: exit.stderr }).toEqual({ code: 0, stderr: "" })
          const keys = (tag: string) =>
            lines.filter((line) => line.startsWith(`${tag} `)).map((line) => line.split(" ")[1] ?? "")
          const outcomes = { acked: keys("A"), unknown: keys("U"), failed: keys("F") }
          console.log(
            `seed 000, Keel [0.7.2 multiprocess, ${keyed ? "keyed" : "unkeyed"}]: ${outcomes.acked.length} acknowledged, ${outcomes.unknown.length} unknown, ${outcomes.failed.length} failed`
          )
          expectOneRowPerAcknowledgedSend(outcomes, yield* rowsByKey(Context.get(queue, SqlClient.SqlClient)))
        }),
      240_000
    )
  }
})
