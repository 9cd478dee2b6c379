/**
 * The limit on PostgreSQL: node-postgres doing the work by hand on Keel's own tables (migrated by
 * the coordinator), in the fewest round trips a hand-written queue needs (as pgmq does) —
 * - enqueue: one autocommit `INSERT … RETURNING id`; batch: one multi-row `INSERT`; concurrent
 *   producers: each on its own connection (one client would queue their statements one by one);
 * - consume: `concurrency` loops, each on its own connection: one `FOR UPDATE SKIP LOCKED` CTE
 *   leases a message, the handler runs, one CTE moves it to the archive if the lease still holds.
 */
import { randomUUID } from "node:crypto"
import pg from "pg"
import { main, payload } from "../workload.js"

const visibilityMs = 30_000
const columns = "(queue_id, payload, priority, enqueued_at, available_at)"
const leaseSql = `WITH picked AS (
    SELECT id FROM keel_queue_messages WHERE queue_id = $1 AND available_at <= $2
    ORDER BY priority, available_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)
  UPDATE keel_queue_messages m SET lease_token = $4, leased_at = $2, available_at = $5, deliveries = m.deliveries + 1
  FROM picked WHERE m.id = picked.id RETURNING m.id, m.payload`
const archiveSql = `WITH moved AS (
    DELETE FROM keel_queue_messages WHERE id = ANY($1::bigint[]) AND lease_token = $2 RETURNING *)
  INSERT INTO keel_queue_archive (id, queue_id, payload, priority, enqueued_at, deliveries, dead, last_error, archived_at)
  SELECT id, queue_id, payload, priority, enqueued_at, deliveries, FALSE, last_error, $3 FROM moved`

const connect = async (url: string) => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  return client
}

await main(async (job) => {
  const client = await connect(job.target)
  const found = await client.query<{ id: string }>("SELECT id FROM keel_queue_queues WHERE name = 'bench'")
  const queueId = Number(found.rows[0]?.id)
  const many = (count: number) =>
    `INSERT INTO keel_queue_messages ${columns} VALUES ${Array.from(
      { length: count },
      (_, i) => `($1, $${3 * i + 2}, 0, $${3 * i + 3}, $${3 * i + 4})`
    ).join(", ")} RETURNING id`
  const insertOne = async (on: pg.Client, message: unknown) => {
    const now = Date.now()
    await on.query(`INSERT INTO keel_queue_messages ${columns} VALUES ($1, $2, 0, $3, $4) RETURNING id`, [
      queueId,
      JSON.stringify(message),
      now,
      now
    ])
  }
  return {
    enqueue: (message) => insertOne(client, message),
    produce: {
      note: "8 async loops, each on its own connection, awaiting its enqueue",
      run: async (producers, count, from, timed) => {
        const connections = await Promise.all(Array.from({ length: producers }, () => connect(job.target)))
        let next = 0
        try {
          await Promise.all(
            connections.map(async (connection) => {
              while (next < count) {
                const index = next++
                const t0 = performance.now()
                await insertOne(connection, payload(from + index))
                timed(performance.now() - t0)
              }
            })
          )
        } finally {
          await Promise.all(connections.map((connection) => connection.end()))
        }
      }
    },
    enqueueBatch: async (payloads) => {
      const now = Date.now()
      await client.query(many(payloads.length), [
        queueId,
        ...payloads.flatMap((payload) => [JSON.stringify(payload), now, now])
      ])
    },
    consume: async (concurrency, handled) => {
      const workers = await Promise.all(Array.from({ length: concurrency }, () => connect(job.target)))
      let running = true
      const loops = workers.map(async (worker) => {
        while (running) {
          const now = Date.now()
          const token = randomUUID()
          const leased = await worker.query<{ id: string; payload: string }>(leaseSql, [
            queueId,
            now,
            1,
            token,
            now + visibilityMs
          ])
          if (leased.rows.length === 0) {
            await new Promise((resolve) => setTimeout(resolve, 1))
            continue
          }
          for (const message of leased.rows) {
            JSON.parse(message.payload)
            handled()
          }
          const moved = await worker.query(archiveSql, [leased.rows.map((r) => r.id), token, Date.now()])
          if (moved.rowCount !== leased.rows.length) throw new Error("lease lost")
        }
      })
      return {
        stop: async () => {
          running = false
          await Promise.all(loops)
          await Promise.all(workers.map((worker) => worker.end()))
        }
      }
    },
    pending: async () => {
      const result = await client.query<{ n: string }>(
        "SELECT COUNT(*) AS n FROM keel_queue_messages WHERE queue_id = $1",
        [queueId]
      )
      return Number(result.rows[0]?.n)
    },
    close: () => client.end()
  }
})
