/**
 * `pnpm --filter @keel/bench profile:queue`: counts the statements Keel's queue sends to the
 * database per message, per workload of the queue benchmark, on SQLite and PostgreSQL — the
 * "why" behind its rows. The drivers are wrapped in this process: every `pg` query (pool clients
 * included) and every better-sqlite3 statement execution (`run`, `get`, `all`, `iterate`, `exec`)
 * is counted and grouped by its first words. Not a benchmark: nothing is timed.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Queue from "@keel/queue/Queue"
import * as Database from "@keel/sql/Database"
import Sqlite from "better-sqlite3"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Scope from "effect/Scope"
import pg from "pg"
import * as Postgres from "../Postgres.js"
import { payload, queueName } from "./workload.js"

const messages = 200

const counts = new Map<string, number>()
const shape = (text: string) =>
  text
    .replace(/\s+/g, " ")
    .trim()
    .replace(/\$\d+|\?/g, "?")
    .slice(0, 90)
const record = (text: unknown) => {
  const key = typeof text === "string" ? shape(text) : "(non-text query)"
  counts.set(key, (counts.get(key) ?? 0) + 1)
}

// node-postgres: every query of every client (pools create `pg.Client`s).
const pgQuery = pg.Client.prototype.query
Reflect.set(pg.Client.prototype, "query", function (this: pg.Client, ...args: Array<unknown>) {
  const [config] = args
  record(typeof config === "string" ? config : Reflect.get(Object(config), "text"))
  return Reflect.apply(pgQuery, this, args)
})

// better-sqlite3: every execution of every prepared statement, and `exec`.
const probe = new Sqlite(":memory:")
const statementPrototype: object = Object.getPrototypeOf(probe.prepare("SELECT 1"))
probe.close()
for (const method of ["run", "get", "all", "iterate"]) {
  const original: unknown = Reflect.get(statementPrototype, method)
  if (typeof original !== "function") continue
  Reflect.set(statementPrototype, method, function (this: { source: string }, ...args: Array<unknown>) {
    record(this.source)
    return Reflect.apply(original, this, args)
  })
}
const exec = Sqlite.prototype.exec
Reflect.set(Sqlite.prototype, "exec", function (this: Sqlite.Database, source: string) {
  record(source)
  return Reflect.apply(exec, this, [source])
})

/** Runs `phase`, then prints the statements it issued per message. */
const measure = async (title: string, perMessage: number, phase: () => Promise<void>) => {
  counts.clear()
  await phase()
  const total = [...counts.values()].reduce((sum, n) => sum + n, 0)
  console.log(`\n${title}: ${(total / perMessage).toFixed(2)} statements per message`)
  for (const [statement, n] of [...counts.entries()].sort((a, b) => b[1] - a[1]))
    console.log(`  ${(n / perMessage).toFixed(2).padStart(6)}  ${statement}`)
}

const profile = async (backend: string, dsn: string) => {
  console.log(`\n## ${backend}`)
  const runtime = ManagedRuntime.make(Queue.layer().pipe(Layer.provide(Database.layer(dsn))))
  try {
    const queues = await runtime.runPromise(Queue.Queues)
    await runtime.runPromise(queues.ensureQueue(queueName))
    const drain = async (concurrency: number) => {
      let handled = 0
      let done: () => void = () => undefined
      const all = new Promise<void>((resolve) => {
        done = resolve
      })
      const scope = await runtime.runPromise(Scope.make())
      await runtime.runPromise(
        Scope.extend(
          queues.consume(
            queueName,
            () =>
              Effect.sync(() => {
                handled++
                if (handled === messages) done()
              }),
            { concurrency }
          ),
          scope
        )
      )
      await all
      while ((await runtime.runPromise(queues.metrics(queueName))).inFlight > 0)
        await new Promise((resolve) => setTimeout(resolve, 5))
      await runtime.runPromise(Scope.close(scope, Exit.void))
    }
    await measure(`${backend} enqueue 1`, messages, async () => {
      for (let i = 0; i < messages; i++) await runtime.runPromise(queues.send(queueName, payload(i)))
    })
    await measure(`${backend} drain, concurrency 1 (incl. consumer start/stop)`, messages, () => drain(1))
    await measure(`${backend} enqueue batch 100`, messages, async () => {
      for (let i = 0; i < messages; i += 100)
        await runtime.runPromise(
          queues.sendBatch(
            queueName,
            Array.from({ length: 100 }, (_, k) => ({ payload: payload(i + k) }))
          )
        )
    })
    await measure(`${backend} drain, concurrency 8 (incl. consumer start/stop)`, messages, () => drain(8))
  } finally {
    await runtime.dispose()
  }
}

const root = mkdtempSync(join(tmpdir(), "keel-bench-profile-"))
let database: Postgres.Fresh | undefined
try {
  await profile("sqlite", `sqlite:${join(root, "profile.db")}`)
  database = await Postgres.fresh(`keel_bench_profile_${process.pid}`)
  await profile("postgres", database.url)
} finally {
  await database?.drop()
  rmSync(root, { recursive: true, force: true })
}
