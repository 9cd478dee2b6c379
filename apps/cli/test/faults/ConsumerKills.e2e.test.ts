/**
 * `keel queue consume` under SIGKILL: three worker processes drain one queue while ten SIGKILLs,
 * spread over the drain at seeded random points (`KEEL_FAULT_SEED` replays them), hit a random
 * worker, which is restarted each time. Messages leased by a killed worker come back after the 2 s visibility
 * timeout. When the queue is empty the workers stop on SIGTERM (exit 0), and every message has
 * been archived exactly once: none lost, none archived twice, none dead-lettered. The handler
 * records each run, so redeliveries (at-least-once) are counted, not forbidden.
 */
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { Database } from "@keel/sql"
import { Processes, Seed, TestDatabase } from "@keel/testkit"
import { Duration, Effect, Schema } from "effect"
import * as InProcess from "../support/InProcess.js"
import * as Keel from "../support/Keel.js"

// The full command line from source (`src/main.ts`, the binary's entry point, runs only bundled).
const main = fileURLToPath(new URL("../../src/Full.ts", import.meta.url))

const messages = 800
const workers = 3
const kills = 10
const queue = "kills"

const Archived = Schema.Struct({
  payload: Schema.String,
  copies: Schema.Number,
  dead: Schema.Number,
  deliveries: Schema.Number
})
const Count = Schema.Struct({ n: Schema.Number })

/** Messages of the queue still in the table (ready, delayed or leased). */
const remaining = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(
    sql`SELECT CAST(count(*) AS INTEGER) AS n FROM keel_queue_messages m
        JOIN keel_queue_queues q ON q.id = m.queue_id WHERE q.name = ${queue}`,
    (rows) => Schema.decodeUnknownSync(Count)(rows[0]).n
  )
)

/**
 * Whether the worker process `pid` has registered itself in `keel_queue_workers`: it is consuming,
 * so its SIGTERM handling is installed. A worker restarted late in the drain may still be booting
 * when the queue empties, and a SIGTERM then would kill it with the default action.
 */
const registered = (pid: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql`SELECT CAST(count(*) AS INTEGER) AS n FROM keel_queue_workers WHERE pid = ${pid}`,
      (rows) => Schema.decodeUnknownSync(Count)(rows[0]).n > 0
    )
  )

/** The queue's archive, one row per payload: how many copies, how many dead-lettered, deliveries. */
const archived = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(
    sql`SELECT a.payload AS payload, CAST(count(*) AS INTEGER) AS copies,
          CAST(sum(CASE WHEN a.dead THEN 1 ELSE 0 END) AS INTEGER) AS dead,
          CAST(max(a.deliveries) AS INTEGER) AS deliveries
        FROM keel_queue_archive a JOIN keel_queue_queues q ON q.id = a.queue_id
        WHERE q.name = ${queue} GROUP BY a.payload`,
    (rows) => Schema.decodeUnknownSync(Schema.Array(Archived))(rows)
  )
)

const keyOf = (index: number) => `m-${String(index).padStart(5, "0")}`

describe("consumers under SIGKILL", () => {
  for (const kind of Keel.kinds) {
    it.scopedLive(
      `[${kind}] ${workers} workers, ${kills} SIGKILLs: every message archived exactly once, none lost`,
      () =>
        Effect.gen(function* () {
          const seed = Seed.generator()
          const database = yield* TestDatabase.fresh(kind)
          const handled = join(database.dir, "handled.jsonl")
          writeFileSync(handled, "")
          const lines = Array.from({ length: messages }, (_, index) => JSON.stringify({ key: keyOf(index) }))
          const sent = yield* Effect.promise(() =>
            InProcess.run({
              args: ["queue", "send-batch", queue, "--create", "--quiet", "--db", database.dsn],
              stdin: `${lines.join("\n")}\n`
            })
          )
          expect(sent.code, sent.stderr).toBe(0)

          // Builtins only (one `sh` per message): record the payload line, then exit 0.
          const command = `IFS= read -r payload; printf '%s\\n' "$payload" >> '${handled}'`
          const start = () =>
            Processes.spawn({
              script: main,
              args: ["queue", "consume", queue, command, "--visibility-timeout", "2s", "--quiet"],
              env: { KEEL_DB: database.dsn }
            })
          const running = yield* Effect.forEach(Array.from({ length: workers }), start)
          const started = Date.now()
          const left: Array<number> = []
          const killing = Effect.gen(function* () {
            // The kills start once the workers are consuming, not while they boot.
            while ((yield* remaining) === messages) yield* Effect.sleep(Duration.millis(50))
            // Kill k comes once the queue is down to about (kills - k) / (kills + 1) of the messages
            // (a seeded fraction of a step earlier or later): spread over the whole drain however
            // fast this machine drains, and always into a queue with work left.
            const step = Math.floor(messages / (kills + 1))
            for (let kill = 0; kill < kills; kill++) {
              const threshold = (kills - kill) * step + seed.int(-Math.floor(step / 3), Math.floor(step / 3))
              while ((yield* remaining) > threshold) yield* Effect.sleep(Duration.millis(20))
              const slot = seed.int(0, workers - 1)
              const victim = running[slot]
              if (victim === undefined) throw new Error(`no worker in slot ${slot}`)
              left.push(yield* remaining)
              yield* victim.kill("SIGKILL")
              const ended = yield* victim.exited
              expect(ended.signal, seed.explain(`worker ${slot}: ${ended.stderr}`)).toBe("SIGKILL")
              running[slot] = yield* start()
            }
          })

          const check = Effect.gen(function* () {
            yield* killing
            // Every kill hit a queue with work left, or the test proves less than it claims.
            expect(Math.min(...left), seed.explain(`messages left at each kill: ${left}`)).toBeGreaterThan(0)
            const deadline = Date.now() + 120_000
            while ((yield* remaining) > 0) {
              if (Date.now() > deadline) throw new Error(seed.explain("the queue did not drain in 120 s"))
              yield* Effect.sleep(Duration.millis(250))
            }
            const drainedMs = Date.now() - started
            for (const worker of running) {
              while (!(yield* registered(worker.pid))) {
                if (Date.now() > deadline) throw new Error(seed.explain(`worker ${worker.pid} never started`))
                yield* Effect.sleep(Duration.millis(100))
              }
            }
            const stopped = yield* Effect.forEach(
              running,
              (worker) => Effect.zipRight(worker.kill("SIGTERM"), worker.exited),
              { concurrency: "unbounded" }
            )
            for (const exit of stopped) {
              expect(exit.code, seed.explain(`a worker stopped by SIGTERM: ${exit.stderr}`)).toBe(0)
              expect(exit.stderr).not.toMatch(/^\s+at /m)
            }
            return { drainedMs, rows: yield* archived, left: yield* remaining }
          })
          const { drainedMs, rows, left: after } = yield* Effect.provide(check, Database.layer(database.dsn))

          const expected = new Set(lines)
          const keys = new Set(rows.map((row) => row.payload))
          expect(after, seed.explain("messages left in the queue")).toBe(0)
          expect(
            rows.filter((row) => row.copies !== 1),
            seed.explain("messages archived more than once")
          ).toEqual([])
          expect(
            rows.filter((row) => row.dead > 0),
            seed.explain("dead-lettered messages")
          ).toEqual([])
          expect(
            lines.filter((line) => !keys.has(line)),
            seed.explain("messages lost")
          ).toEqual([])
          expect([...keys].filter((key) => !expected.has(key))).toEqual([])

          const runs = readFileSync(handled, "utf8")
            .split("\n")
            .filter((line) => line !== "")
          const ran = new Set(runs)
          expect(
            lines.filter((line) => !ran.has(line)),
            seed.explain("archived without a handler run")
          ).toEqual([])
          const redelivered = rows.filter((row) => row.deliveries > 1).length
          console.log(
            `consumer kills [${kind}]: ${messages} messages, ${workers} workers, ${kills} SIGKILLs ` +
              `(messages left at each: ${left.join(", ")}); ${redelivered} message(s) delivered more than ` +
              `once, ${runs.length} handler runs (${runs.length - messages} repeated); drained in ` +
              `${(drainedMs / 1_000).toFixed(1)} s (seed ${seed.seed})`
          )
        }),
      240_000
    )
  }
})
