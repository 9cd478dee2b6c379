/**
 * The dashboard's read routes over real HTTP on each backend: the overview counts every queue's
 * messages by state, workers (alive and stale), reservations and cursors, and carries each queue's
 * sampled depth and this server's send rate; `/workers` lists workers with heartbeat ages.
 */
import { mkdirSync, mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, layer } from "@effect/vitest"
import { Database } from "@keel/sql"
import { Effect } from "effect"
import { expectOk, list } from "./support/Expect.js"
import * as TestServer from "./support/TestServer.js"

const env = { KEEL_DASHBOARD_SAMPLE_INTERVAL: "200 millis" }

const queueOf = (overview: Record<string, unknown>, name: string): Record<string, unknown> => {
  const found = list(overview, "queues").find((queue) => queue.queue === name)
  if (found === undefined) throw new Error(`no ${name} in ${JSON.stringify(overview)}`)
  return found
}

/** Runs `statement` on the server's database from the test process. */
const onDatabase = <A, E>(
  server: TestServer.Running,
  statement: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>
) =>
  Effect.provide(
    Effect.flatMap(SqlClient.SqlClient, statement),
    Database.layer(server.database.dsn, { maxConnections: 1 })
  )

for (const kind of TestServer.kinds) {
  describe(`HTTP dashboard [${kind}]`, () => {
    layer(TestServer.layer(kind, env), { timeout: 120_000, excludeTestServices: true })((it) => {
      it.effect(
        "the overview counts each queue's messages by state, the workers, reservations and cursors",
        () =>
          Effect.gen(function* () {
            const http = yield* TestServer.client
            expectOk(yield* http.post("/queues", { name: "overview-a", maxDeliveries: 1 }), 201)
            for (const payload of [1, 2, 3, 4]) {
              expectOk(yield* http.post("/queues/overview-a/messages", { payload }), 201)
            }
            expectOk(yield* http.post("/queues/overview-a/messages", { payload: 5, delay: 3_600_000 }), 201)
            const read = list(expectOk(yield* http.post("/queues/overview-a/read", { qty: 2 })), "messages")
            const [dead, leased] = read
            expectOk(
              yield* http.post("/queues/overview-a/messages/release", {
                leases: [{ id: dead?.id, lease: dead?.lease }],
                error: "failed"
              })
            )
            expect(leased).toBeDefined()
            const project = join(http.server.database.dir, "overview-project")
            mkdirSync(project, { recursive: true })
            expectOk(yield* http.post("/reservations", { path: project, cwd: project, tag: "web" }))
            expectOk(yield* http.put("/cursors/overview-peer", { position: "7" }))
            // A live worker, one whose heartbeat stopped 40 s ago (as a crashed process leaves it)
            // with a 20 s timeout: stale; and one as silent whose own timeout is an hour: alive.
            // (The server runs no maintenance pass that would deregister the stale one meanwhile.)
            const now = Date.now()
            const silent = now - 40_000
            yield* onDatabase(
              http.server,
              (
                sql
              ) => sql`INSERT INTO keel_queue_workers (id, queue_id, host, pid, started_at, heartbeat_at, timeout_ms)
              VALUES ('overview-live', NULL, 'here', 11, ${now}, ${now}, 30000),
                     ('overview-stale', NULL, 'gone', 12, ${silent}, ${silent}, 20000),
                     ('overview-slow', NULL, 'slow', 13, ${silent}, ${silent}, 3600000)`
            )

            const overview = expectOk(yield* http.get("/dashboard/overview"))
            expect(queueOf(overview, "overview-a")).toMatchObject({
              depth: 2,
              inFlight: 1,
              delayed: 1,
              dead: 1,
              archived: 0
            })
            expect(overview.workers).toEqual({ alive: 2, stale: 1 })
            expect(overview.reservations).toBe(1)
            // `pending` depends on when the debounced flush runs; the count does not.
            expect(overview.cursors).toMatchObject({ namespace: "default", count: 1 })

            const workers = list(expectOk(yield* http.get("/workers")), "workers")
            const byId = new Map(workers.map((worker) => [worker.id, worker]))
            expect(byId.get("overview-live")).toMatchObject({ host: "here", pid: 11, stale: false })
            expect(byId.get("overview-stale")).toMatchObject({
              host: "gone",
              pid: 12,
              stale: true,
              inFlight: 0
            })
            expect(byId.get("overview-slow")).toMatchObject({
              host: "slow",
              stale: false,
              timeout: 3_600_000
            })
            expect(Number(byId.get("overview-stale")?.heartbeatAgeMs)).toBeGreaterThanOrEqual(40_000)
          })
      )

      it.effect(
        "each queue carries its sampled depth, ending with the count now, and this server's send rate",
        () =>
          Effect.gen(function* () {
            const http = yield* TestServer.client
            expectOk(yield* http.post("/queues", { name: "overview-b" }), 201)
            // Samples are taken every 200 ms: wait for some with the queue empty, then send.
            yield* Effect.sleep("1200 millis")
            for (const payload of [1, 2, 3]) {
              expectOk(yield* http.post("/queues/overview-b/messages", { payload }), 201)
            }
            const queue = queueOf(expectOk(yield* http.get("/dashboard/overview")), "overview-b")
            const history = list(queue, "history")
            expect(history.length).toBeGreaterThanOrEqual(3)
            expect(history[0]?.depth).toBe(0)
            expect(history[history.length - 1]?.depth).toBe(3)
            const times = history.map((sample) => Number(sample.at))
            expect([...times].sort((a, b) => a - b)).toEqual(times)
            expect(queue.sendRate).toBeGreaterThan(0)
            expect(queue.ackRate).toBe(0)
          })
      )
    })
  })
}

describe("the dashboard's files at /ui", () => {
  const token = "dashboard-test-token-0123456789"
  layer(
    TestServer.layer("sqlite", {
      KEEL_TOKEN: token,
      KEEL_UI_DIR: join(import.meta.dirname, "fixtures", "ui")
    }),
    { timeout: 120_000, excludeTestServices: true }
  )((it) => {
    it.effect(
      "are served without a token (gzipped, hashed names cached for good), while the API still needs it",
      () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          const page = yield* http.get("/ui")
          expect(page.status).toBe(200)
          expect(page.headers.get("content-type")).toContain("text/html")
          expect(page.headers.get("cache-control")).toBe("no-cache")
          expect(page.headers.get("content-security-policy")).toContain("default-src 'self'")
          expect(page.text).toContain("/ui/app-TEST.js")
          const script = yield* http.get("/ui/app-TEST.js", { "accept-encoding": "gzip" })
          expect(script.status).toBe(200)
          expect(script.headers.get("content-encoding")).toBe("gzip")
          expect(script.headers.get("cache-control")).toContain("immutable")
          expect(script.text).toContain("the dashboard fixture")
          expect(expectOk(yield* http.get("/ui/auth.json"))).toEqual({ token: true })
          expect((yield* http.get("/ui/missing.js")).status).toBe(404)
          expect((yield* http.get("/ui/..%2F..%2Fpackage.json")).status).toBe(404)
          expect((yield* http.get("/dashboard/overview")).status).toBe(401)
          expect((yield* http.get("/dashboard/overview", { authorization: `Bearer ${token}` })).status).toBe(
            200
          )
        })
    )
  })

  layer(TestServer.layer("sqlite", { KEEL_UI_DIR: mkdtempSync(join(tmpdir(), "keel-no-ui-")) }), {
    timeout: 120_000,
    excludeTestServices: true
  })((it) => {
    it.effect("answer 503 with the command that builds them when no build is found", () =>
      Effect.gen(function* () {
        const http = yield* TestServer.client
        const page = yield* http.get("/ui")
        expect(page.status).toBe(503)
        expect(page.text).toContain("--filter @keel/ui build")
        expect(expectOk(yield* http.get("/ui/auth.json"))).toEqual({ token: false })
      })
    )
  })
})
