/**
 * The PostgreSQL server the benchmarks run on (`KEEL_BENCH_PG_URL`, default the local server with
 * trust auth), and the fresh database each suite measures on. Database names are built by the
 * suites from their own name and the process id: never user input.
 */
import pg from "pg"

/** The server's administrative URL. */
export const adminUrl = process.env.KEEL_BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"

/** Runs `statement` on the administrative database, over a connection of its own. */
export const admin = async (statement: string): Promise<void> => {
  const client = new pg.Client({ connectionString: adminUrl })
  await client.connect()
  try {
    await client.query(statement)
  } finally {
    await client.end()
  }
}

/** A fresh, empty database `name` (one left over by a crashed run is dropped first). */
export interface Fresh {
  readonly url: string
  /** Drops it (WITH FORCE: connections left open are closed). */
  readonly drop: () => Promise<void>
}

/** Creates the fresh database `name`. */
export const fresh = async (name: string): Promise<Fresh> => {
  const drop = () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  await drop()
  await admin(`CREATE DATABASE ${name}`)
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  return { url: url.toString(), drop }
}
