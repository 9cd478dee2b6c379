/**
 * The data every browser test starts from, written through the API: two workers (one alive, one
 * silent for 40 s: stale), queue `emails` (3 ready, one of them with a payload too long to show
 * whole, 1 in flight leased by the alive worker, 1 delayed), queue `payments` (2 dead letters after
 * one failed delivery each), a yearly schedule of `emails`, two reservations of project `alpha` and
 * one of a path without project, and two cursors.
 */
import { mkdirSync } from "node:fs"
import { join } from "node:path"
import * as SqlClient from "@effect/sql/SqlClient"
import { Database } from "@keel/sql"
import { Effect } from "effect"
import { api, field, type Served } from "./Serve.js"

/** What the seed wrote, for the tests to look for. */
export interface Seeded {
  /** Ids of the dead letters of `payments`, newest first. */
  readonly dead: ReadonlyArray<number>
  /** Id of the `emails` message whose payload is too long to show whole. */
  readonly long: number
  /** Id of the `emails` message the alive worker leased. */
  readonly leased: number
  /** The reserved ports: `alpha` web, `alpha` api, and the unprojected path's db. */
  readonly ports: { readonly web: number; readonly api: number; readonly db: number }
  readonly projectPath: string
  readonly otherPath: string
}

const numberOf = (value: unknown): number => {
  if (typeof value !== "number") throw new Error(`expected a number: ${JSON.stringify(value)}`)
  return value
}

const leasesOf = (read: unknown): ReadonlyArray<{ readonly id: number; readonly lease: string }> => {
  const messages = field(read, "messages")
  if (!Array.isArray(messages)) throw new Error(`expected messages: ${JSON.stringify(read)}`)
  return messages.map((message: unknown) => {
    const lease = field(message, "lease")
    if (typeof lease !== "string") throw new Error(`expected a lease: ${JSON.stringify(message)}`)
    return { id: numberOf(field(message, "id")), lease }
  })
}

/** The seeded worker that stays alive (`heartbeat` renews it). */
export const aliveWorker = "worker-mail-1"

const onDatabase = <A, E>(server: Served, statement: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>) =>
  Effect.runPromise(
    Effect.provide(
      Effect.flatMap(SqlClient.SqlClient, statement),
      Database.layer(server.dsn, { maxConnections: 1 })
    )
  )

/** Writes the alive worker's heartbeat now, as its process would every few seconds. */
export const heartbeat = (server: Served): Promise<unknown> =>
  onDatabase(
    server,
    (sql) => sql`UPDATE keel_queue_workers SET heartbeat_at = ${Date.now()} WHERE id = ${aliveWorker}`
  )

/**
 * Sends `payloads` to `queue` (whose max deliveries is 1, and which holds no other visible message)
 * and fails each one's delivery: they become dead letters. Their ids, in the order sent.
 */
export const deadLetters = async (
  server: Served,
  queue: string,
  payloads: ReadonlyArray<unknown>
): Promise<ReadonlyArray<number>> => {
  const ids: Array<number> = []
  for (const payload of payloads) {
    ids.push(numberOf(field(await api(server, "POST", `/queues/${queue}/messages`, { payload }), "id")))
  }
  const leases = leasesOf(await api(server, "POST", `/queues/${queue}/read`, { qty: payloads.length }))
  await api(server, "POST", `/queues/${queue}/messages/release`, { leases, error: "card declined" })
  return ids
}

/** Writes the seed through the server's API. */
export const seed = async (server: Served): Promise<Seeded> => {
  // Workers register from their own processes; their rows are what the server reads. The alive
  // one's own timeout is an hour; the silent one's is 30 s, so the server judges it stale (nothing
  // in `keel serve` runs the maintenance that would deregister it).
  const now = Date.now()
  const silent = now - 40_000
  await onDatabase(
    server,
    (
      sql
    ) => sql`INSERT INTO keel_queue_workers (id, queue_id, host, pid, started_at, heartbeat_at, timeout_ms)
      VALUES (${aliveWorker}, NULL, 'mail-host', 4242, ${now}, ${now}, 3600000),
             ('worker-mail-2', NULL, 'old-host', 4343, ${silent}, ${silent}, 30000)`
  )
  await api(server, "POST", "/queues", { name: "emails", maxDeliveries: 3 })
  await api(server, "POST", "/queues", { name: "payments", maxDeliveries: 1 })
  const sent: Array<number> = []
  for (const [index, body] of ["hello", "welcome", "x".repeat(2000)].entries()) {
    const answer = await api(server, "POST", "/queues/emails/messages", {
      payload: { to: `user${index + 1}@example.com`, subject: "Welcome", body }
    })
    sent.push(numberOf(field(answer, "id")))
  }
  await api(server, "POST", "/queues/emails/messages", {
    payload: { to: "later@example.com" },
    delay: 3_600_000
  })
  // One more ready message, leased by the alive worker: 3 ready, 1 in flight, 1 delayed. Leases go
  // oldest first, so the one leased is the first sent; the 4th send stays ready.
  await api(server, "POST", "/queues/emails/messages", { payload: { to: "user4@example.com" } })
  await api(server, "POST", "/queues/emails/read", {
    qty: 1,
    visibilityTimeout: 3_600_000,
    workerId: aliveWorker
  })

  // A schedule whose next tick is months away: it sends nothing while the suite runs.
  await api(server, "POST", "/schedules", {
    name: "new-year-mail",
    queue: "emails",
    cron: "0 0 1 1 *",
    timeZone: "UTC"
  })

  await deadLetters(server, "payments", [
    { order: 42, amount: 1999 },
    { order: 43, amount: 500 }
  ])
  const deadList = field(await api(server, "GET", "/queues/payments/dead"), "messages")
  if (!Array.isArray(deadList)) throw new Error("expected dead letters")
  const dead = deadList.map((message: unknown) => numberOf(field(message, "id")))

  const projectPath = join(server.dir, "alpha")
  const otherPath = join(server.dir, "tools")
  mkdirSync(projectPath)
  mkdirSync(otherPath)
  const reserve = async (path: string, tag: string, project?: string) =>
    numberOf(
      field(
        field(await api(server, "POST", "/reservations", { path, cwd: path, tag, project }), "reservation"),
        "port"
      )
    )
  const web = await reserve(projectPath, "web", "alpha")
  const apiPort = await reserve(projectPath, "api", "alpha")
  const db = await reserve(otherPath, "db")

  await api(server, "PUT", "/cursors/peer-a", { position: "120" })
  await api(server, "PUT", "/cursors/peer-b", { position: "75" })
  await api(server, "POST", "/cursors/flush")

  return {
    dead,
    long: sent[2] ?? 0,
    leased: sent[0] ?? 0,
    ports: { web, api: apiPort, db },
    projectPath,
    otherPath
  }
}
