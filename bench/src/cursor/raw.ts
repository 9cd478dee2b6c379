/**
 * The limit, in a child of its own: the monotonic upserts Keel's flush issues, written by hand on
 * Keel's table (migrated by the coordinator) — a prepared statement run N times in one
 * `BEGIN IMMEDIATE` transaction on better-sqlite3; multi-row statements chunked under the
 * parameter limit in one transaction on node-postgres. `set` upserts every position on its own.
 */
import Sqlite from "better-sqlite3"
import pg from "pg"
import * as Report from "../Report.js"
import { flushRow, main, namespace, positionOf, setPeers } from "./workload.js"

/** Writes cursors: one at a time (autocommit), or many in one transaction. */
interface Writer {
  readonly upsertOne: (peer: string, position: string) => Promise<void>
  readonly flush: (rows: ReadonlyArray<readonly [peer: string, position: string]>) => Promise<void>
  readonly close: () => Promise<void>
}

/** The 40-digit sort key (`Position.sortKey`), computed the same way by hand. */
const sortKey = (position: string) => {
  const [ms = "0", seq = "0"] = position.split("-")
  return ms.padStart(20, "0") + seq.padStart(20, "0")
}

const upsertSql = (placeholders: string) =>
  `INSERT INTO keel_cursors (namespace, peer, position, position_key, updated_at) VALUES ${placeholders}
   ON CONFLICT (namespace, peer) DO UPDATE SET position = excluded.position,
     position_key = excluded.position_key, updated_at = excluded.updated_at
   WHERE excluded.position_key > keel_cursors.position_key`

const sqliteWriter = (file: string): Writer => {
  const db = new Sqlite(file, { timeout: 5000 })
  db.pragma("journal_mode = WAL")
  db.pragma("synchronous = NORMAL")
  const upsert = db.prepare(upsertSql("(?, ?, ?, ?, ?)"))
  const begin = db.prepare("BEGIN IMMEDIATE")
  const commit = db.prepare("COMMIT")
  return {
    upsertOne: async (peer, position) => {
      upsert.run(namespace, peer, position, sortKey(position), Date.now())
    },
    flush: async (rows) => {
      const now = Date.now()
      begin.run()
      try {
        for (const [peer, position] of rows) upsert.run(namespace, peer, position, sortKey(position), now)
        commit.run()
      } catch (error) {
        if (db.inTransaction) db.exec("ROLLBACK")
        throw error
      }
    },
    close: async () => void db.close()
  }
}

const postgresWriter = async (url: string): Promise<Writer> => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  const perStatement = Math.floor(65535 / 5)
  const statement = (count: number) =>
    upsertSql(
      Array.from(
        { length: count },
        (_, i) => `($${5 * i + 1}, $${5 * i + 2}, $${5 * i + 3}, $${5 * i + 4}, $${5 * i + 5})`
      ).join(", ")
    )
  const one = statement(1)
  return {
    upsertOne: async (peer, position) => {
      await client.query(one, [namespace, peer, position, sortKey(position), Date.now()])
    },
    flush: async (rows) => {
      const now = Date.now()
      await client.query("BEGIN")
      try {
        for (let start = 0; start < rows.length; start += perStatement) {
          const chunk = rows.slice(start, start + perStatement)
          await client.query(
            statement(chunk.length),
            chunk.flatMap(([peer, position]) => [namespace, peer, position, sortKey(position), now])
          )
        }
        await client.query("COMMIT")
      } catch (error) {
        await client.query("ROLLBACK")
        throw error
      }
    },
    close: () => client.end()
  }
}

await main(async (job) => {
  const rows: Array<Report.Row> = []
  const writer =
    job.backend === "sqlite" ? sqliteWriter(job.dsn.slice("sqlite:".length)) : await postgresWriter(job.dsn)
  try {
    const peers = Array.from({ length: setPeers }, (_, i) => `set-${i}`)
    const setOps = Math.max(100, Math.floor(job.setOps / 100))
    rows.push(
      await Report.latency(
        {
          system: "raw",
          backend: job.backend,
          workload: "set",
          note: "every position upserted in its own autocommit transaction (no debounce)"
        },
        setOps,
        (index) => writer.upsertOne(peers[index % setPeers] ?? "set-0", `${1_700_000_000_000 + index}-0`)
      )
    )
    let pending: ReadonlyArray<readonly [string, string]> = []
    for (const [size, rounds] of job.flushSizes) {
      rows.push(
        await flushRow({ system: "raw", backend: job.backend }, size, rounds, {
          prepare: async (names, round) => {
            pending = names.map((peer, i) => [peer, positionOf(round, i)] as const)
          },
          flush: () => writer.flush(pending)
        })
      )
    }
  } finally {
    await writer.close()
  }
  return rows
})
