/**
 * liteque (SQLite through drizzle-orm and better-sqlite3) as its README shows:
 * `buildDBClient(path, { runMigrations: true })`, `new SqliteQueue(name, db, options)`,
 * `queue.enqueue`, and `new Runner(queue, { run }, { concurrency, pollIntervalMs, timeoutSecs })`
 * (`timeoutSecs` 60 as in the README; `pollIntervalMs` 100 instead of its 1000, which only shortens
 * the idle wait before `stop` returns — while jobs remain, the runner never sleeps).
 * liteque has no batch enqueue. Completed jobs are deleted.
 *
 * Compatibility shim: liteque 0.8.0 dequeues inside `db.transaction(async (txn) => …)`, and
 * better-sqlite3 ≥ 11.10 (this workspace has 12.x) rejects a transaction function that returns a
 * promise ("Transaction function cannot return a promise", karakeep-app/karakeep#1594; liteque's
 * main user pins better-sqlite3 11.3). On liteque's own connection this bench restores what
 * better-sqlite3 ≤ 11.9 did — BEGIN, run the function until its first `await`, COMMIT, return the
 * promise — so liteque runs as it does in practice: its dequeue statements run after that COMMIT,
 * each in autocommit (one dequeue loop per process keeps that safe here).
 */
import Database from "better-sqlite3"
import { buildDBClient, Runner, SqliteQueue } from "liteque"
import { main, type Payload, queueName } from "../workload.js"

type Liteque = ReturnType<typeof buildDBClient>

/** better-sqlite3 ≤ 11.9's `transaction`: the function's return value, promise or not, is committed as is. */
const restoreAsyncTransactions = (db: Liteque) => {
  const session: unknown = Reflect.get(db, "session")
  const client: unknown =
    typeof session === "object" && session !== null ? Reflect.get(session, "client") : null
  if (!(client instanceof Database)) throw new Error("liteque's better-sqlite3 connection was not found")
  const wrap =
    (begin: string) =>
    (fn: (...args: ReadonlyArray<unknown>) => unknown) =>
    (...args: ReadonlyArray<unknown>) => {
      client.exec(begin)
      try {
        const result = fn(...args)
        client.exec("COMMIT")
        return result
      } catch (error) {
        if (client.inTransaction) client.exec("ROLLBACK")
        throw error
      }
    }
  const transaction = (fn: (...args: ReadonlyArray<unknown>) => unknown) =>
    Object.assign(wrap("BEGIN")(fn), {
      default: wrap("BEGIN")(fn),
      deferred: wrap("BEGIN DEFERRED")(fn),
      immediate: wrap("BEGIN IMMEDIATE")(fn),
      exclusive: wrap("BEGIN EXCLUSIVE")(fn)
    })
  Reflect.set(client, "transaction", transaction)
}

await main(async (job) => {
  const db = buildDBClient(job.target, { runMigrations: true })
  restoreAsyncTransactions(db)
  const queue = new SqliteQueue<Payload>(queueName, db, {
    defaultJobArgs: { numRetries: 2 },
    keepFailedJobs: false
  })
  return {
    enqueue: (payload) => queue.enqueue(payload),
    enqueueBatch: undefined,
    consume: async (concurrency, handled) => {
      const runner = new Runner<Payload>(
        queue,
        { run: async () => handled() },
        // The poll interval only matters when the queue is empty (between drains, and for `stop`).
        { concurrency, pollIntervalMs: 100, timeoutSecs: 60 }
      )
      const running = runner.run()
      return {
        stop: async () => {
          runner.stop()
          await running
        }
      }
    },
    pending: async () => {
      const stats = await queue.stats()
      return stats.pending + stats.pending_retry + stats.running
    },
    // liteque exposes no way to close its connection; the child process exits right after.
    close: async () => undefined
  }
})
