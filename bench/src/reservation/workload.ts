/**
 * The reservation workload, done two ways on the same table: through Keel's registry, and by
 * hand with the raw driver (better-sqlite3 / pg) issuing the statements Keel issues — the limit
 * a hand-written allocator could reach. One operation = reserve a port for a key, then release it
 * (two write transactions).
 */
import Sqlite from "better-sqlite3"
import pg from "pg"
import { immediate } from "../RawSqlite.js"

/** Where every benchmark reservation is placed. */
export const range = { min: 20_000, max: 29_999 }

/** One benchmark client: `once()` reserves a port for its key, then releases it. */
export interface Client {
  readonly once: () => Promise<void>
  readonly close: () => Promise<void>
}

/** The tag of every benchmark reservation (each process has its own directory). */
export const tag = "op"

const columns = "path, tag, port, project, task, created_at, last_used_at, ttl_ms, expires_at"

interface Held {
  readonly port: number
  readonly expires_at: number | null
}

/** The lowest port of the range that no live reservation holds. */
const lowestFree = (held: ReadonlyArray<Held>, now: number): number => {
  const taken = new Set(
    held.filter((row) => row.expires_at === null || row.expires_at > now).map((row) => row.port)
  )
  for (let port = range.min; port <= range.max; port++) if (!taken.has(port)) return port
  throw new Error("range exhausted")
}

/** The statements of one Keel reserve and one release, by hand with better-sqlite3. */
export const rawSqlite = (file: string, directory: string): Client => {
  const db = new Sqlite(file, { timeout: 5000 })
  db.pragma("journal_mode = WAL")
  db.pragma("synchronous = NORMAL")
  db.pragma("foreign_keys = ON")
  const byKey = db.prepare(`SELECT ${columns} FROM keel_reservations WHERE path = ? AND tag IN (?)`)
  const inRange = db.prepare(
    "SELECT path, tag, port, expires_at FROM keel_reservations WHERE port BETWEEN ? AND ? OR 1=0"
  )
  const insert = db.prepare(
    "INSERT INTO keel_reservations (path, tag, port, project, task, created_at, last_used_at, ttl_ms, expires_at) VALUES (?, ?, ?, NULL, NULL, ?, ?, NULL, NULL)"
  )
  const remove = db.prepare(`DELETE FROM keel_reservations WHERE path = ? AND tag = ? RETURNING ${columns}`)
  const transaction = immediate(db)
  return {
    once: async () => {
      transaction(() => {
        const now = Date.now()
        if (byKey.all(directory, tag).length > 0) return
        const port = lowestFree(inRange.all(range.min, range.max) as Array<Held>, now)
        insert.run(directory, tag, port, now, now)
      })
      transaction(() => remove.all(directory, tag))
    },
    close: async () => void db.close()
  }
}

/** The statements of one Keel reserve and one release, by hand with node-postgres. */
export const rawPostgres = async (url: string, directory: string): Promise<Client> => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  // The same lock Keel takes, keyed by text that PostgreSQL hashes (Keel hashes it itself).
  const lockKey = "keel-reservation-allocate"
  const transaction = async <A>(body: () => Promise<A>): Promise<A> => {
    await client.query("BEGIN")
    try {
      const result = await body()
      await client.query("COMMIT")
      return result
    } catch (error) {
      await client.query("ROLLBACK")
      throw error
    }
  }
  return {
    once: async () => {
      await transaction(async () => {
        await client.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [lockKey])
        const now = Date.now()
        const existing = await client.query(
          `SELECT ${columns} FROM keel_reservations WHERE path = $1 AND tag IN ($2)`,
          [directory, tag]
        )
        if (existing.rowCount !== 0) return
        const held = await client.query<Held>(
          "SELECT path, tag, port, expires_at FROM keel_reservations WHERE port BETWEEN $1 AND $2 OR 1=0",
          [range.min, range.max]
        )
        const port = lowestFree(
          held.rows.map((row) => ({
            port: Number(row.port),
            expires_at: row.expires_at === null ? null : Number(row.expires_at)
          })),
          now
        )
        await client.query(
          "INSERT INTO keel_reservations (path, tag, port, project, task, created_at, last_used_at, ttl_ms, expires_at) VALUES ($1, $2, $3, NULL, NULL, $4, $5, NULL, NULL)",
          [directory, tag, port, now, now]
        )
      })
      await transaction(() =>
        client.query(`DELETE FROM keel_reservations WHERE path = $1 AND tag = $2 RETURNING ${columns}`, [
          directory,
          tag
        ])
      )
    },
    close: () => client.end()
  }
}

/** Fills the range with `count` reservations of other keys on every other port, as a busy registry would be. */
export const prefillRows = (count: number) =>
  Array.from({ length: count }, (_, index) => ({
    path: "/bench/prefill",
    tag: `p${index}`,
    port: range.min + 2 * index
  }))
