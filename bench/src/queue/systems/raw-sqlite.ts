/**
 * The limit on SQLite: better-sqlite3 doing Keel's statements by hand on Keel's own tables
 * (migrated by the coordinator), with prepared statements and nothing else —
 * - enqueue: one autocommit `INSERT … RETURNING id` (one statement is already atomic), read with
 *   `all()`: `get()` would commit inside sqlite3_reset, which skips the WAL auto-checkpoint, so the
 *   WAL would grow without bound and the limit would skip work every other system does (pinned in
 *   packages/sql/test/hazards.test.ts);
 * - batch: one `BEGIN IMMEDIATE` transaction of 100 prepared inserts;
 * - consume: a loop that leases up to `concurrency` messages in one `BEGIN IMMEDIATE` transaction
 *   (select, then lease each), runs the handlers, and archives each message in its own
 *   transaction (lease check, copy to the archive, delete), as Keel's consumer does.
 */
import { randomUUID } from "node:crypto"
import Sqlite from "better-sqlite3"
import { immediate } from "../../RawSqlite.js"
import { main } from "../workload.js"

const visibilityMs = 30_000

await main(async (job) => {
  const db = new Sqlite(job.target, { timeout: 5000 })
  db.pragma("journal_mode = WAL")
  db.pragma("synchronous = NORMAL")
  db.pragma("foreign_keys = ON")
  const queue = db.prepare("SELECT id FROM keel_queue_queues WHERE name = 'bench'").get() as { id: number }
  const insert = db.prepare(
    `INSERT INTO keel_queue_messages (queue_id, payload, priority, enqueued_at, available_at)
     VALUES (?, ?, 0, ?, ?) RETURNING id`
  )
  const select = db.prepare(
    `SELECT id, payload, deliveries FROM keel_queue_messages WHERE queue_id = ? AND available_at <= ?
     ORDER BY priority, available_at, id LIMIT ?`
  )
  const lease = db.prepare(
    `UPDATE keel_queue_messages SET lease_token = ?, leased_at = ?, available_at = ?, deliveries = deliveries + 1
     WHERE id = ?`
  )
  const check = db.prepare("SELECT lease_token FROM keel_queue_messages WHERE id = ?")
  const archive = db.prepare(
    `INSERT INTO keel_queue_archive (id, queue_id, payload, priority, enqueued_at, deliveries, dead, last_error, archived_at)
     SELECT id, queue_id, payload, priority, enqueued_at, deliveries, 0, last_error, ? FROM keel_queue_messages WHERE id = ?`
  )
  const remove = db.prepare("DELETE FROM keel_queue_messages WHERE id = ?")
  const pending = db.prepare("SELECT COUNT(*) AS n FROM keel_queue_messages WHERE queue_id = ?")
  const transaction = immediate(db)
  const send = (text: string) => {
    const now = Date.now()
    return insert.all(queue.id, text, now, now)
  }
  return {
    enqueue: async (payload) => send(JSON.stringify(payload)),
    enqueueBatch: async (payloads) =>
      transaction(() => {
        for (const p of payloads) send(JSON.stringify(p))
      }),
    consume: async (concurrency, handled) => {
      let running = true
      const loop = (async () => {
        while (running) {
          const now = Date.now()
          const token = randomUUID()
          const leased = transaction(() => {
            const rows = select.all(queue.id, now, concurrency) as Array<{ id: number; payload: string }>
            for (const message of rows) lease.run(token, now, now + visibilityMs, message.id)
            return rows
          })
          if (leased.length === 0) {
            await new Promise((resolve) => setTimeout(resolve, 1))
            continue
          }
          await Promise.all(
            leased.map(async (message) => {
              JSON.parse(message.payload)
              handled()
              transaction(() => {
                const held = check.get(message.id) as { lease_token: string } | undefined
                if (held?.lease_token !== token) throw new Error("lease lost")
                archive.run(Date.now(), message.id)
                remove.run(message.id)
              })
            })
          )
        }
      })()
      return {
        stop: async () => {
          running = false
          await loop
        }
      }
    },
    pending: async () => (pending.get(queue.id) as { n: number }).n,
    close: async () => void db.close()
  }
})
