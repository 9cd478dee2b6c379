/**
 * PostgreSQL goes away under load: the server runs on a private PostgreSQL (`PrivatePostgres`:
 * the shared one serves other test files meanwhile), 16 HTTP clients send and 4 HTTP consumers
 * read and archive while the database is restarted, stopped for 10 s and has its backends
 * terminated (`pg_terminate_backend`) mid-transaction, at seeded random moments. While it is down
 * every request is answered at once with a typed 503; when it is back the same server process
 * serves again and the consumers resume; every acknowledged send ends up stored exactly once.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { Database } from "@keel/sql"
import { PrivatePostgres, Seed, TestDatabase } from "@keel/testkit"
import { Duration, Effect } from "effect"
import { expectOk } from "../support/Expect.js"
import * as Load from "../support/Load.js"
import * as TestServer from "../support/TestServer.js"

const queued = (dsn: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ n: number }>`SELECT COUNT(*)::int AS n FROM keel_queue_messages`
    return row?.n ?? 0
  }).pipe(Effect.provide(Database.layer(dsn)), Effect.scoped, Effect.orDie)

const fastMs = 2_000
const unavailable = PrivatePostgres.unavailable()

describe.skipIf(unavailable !== undefined)("HTTP server while PostgreSQL goes away [postgres]", () => {
  it.scopedLive(
    "restart, a 10 s stop, terminated backends: 503 at once while down, recovery without a restart, every 201 stored once",
    () =>
      Effect.gen(function* () {
        const random = Seed.generator()
        const pg = yield* PrivatePostgres.make
        yield* pg.psql("CREATE DATABASE keel")
        const scratch = yield* Effect.orDie(TestDatabase.fresh("sqlite"))
        const database: TestDatabase.Info = { ...scratch, kind: "postgres", dsn: pg.url("keel") }
        const server = yield* TestServer.start(database)
        expectOk(yield* TestServer.request(server, "POST", "/queues", { body: { name: "faults" } }), 201)
        const load = yield* Load.start({ url: server.url, queue: "faults", clients: 16, pauseMs: 20 })
        const consumer = yield* Load.consume({ url: server.url, queue: "faults", consumers: 4 })
        const pause = (min: number, max: number) => Effect.sleep(Duration.millis(random.int(min, max)))

        yield* pause(500, 1_500)
        yield* pg.restart
        yield* pause(1_000, 2_000)

        const stoppedAt = performance.now()
        yield* pg.stop
        yield* Effect.sleep(Duration.seconds(10))
        const downUntil = performance.now()
        const archivedBeforeStart = consumer.archived()
        yield* pg.start
        const backAt = performance.now()
        yield* Effect.sleep(Duration.seconds(3))

        for (let round = 0; round < 10; round++) {
          yield* pause(100, 400)
          yield* pg.psql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'keel' AND pid <> pg_backend_pid()"
          )
        }
        yield* Effect.sleep(Duration.seconds(2))
        const attempts = yield* load.stop
        // Let the consumers take everything that is left.
        const deadline = Date.now() + 60_000
        while ((yield* queued(database.dsn)) > 0 && Date.now() < deadline)
          yield* Effect.sleep(Duration.millis(200))
        yield* consumer.stop

        const summary = JSON.stringify(Load.tally(attempts))
        const whileDown = attempts.filter(
          (attempt) => attempt.at > stoppedAt + 500 && attempt.at + attempt.ms < downUntil
        )
        expect(
          whileDown.length,
          random.explain(`no request while PostgreSQL was down; ${summary}`)
        ).toBeGreaterThan(16)
        expect(
          whileDown
            .filter(
              (attempt) =>
                attempt.ms > fastMs ||
                attempt.outcome._tag !== "Status" ||
                attempt.outcome.status !== 503 ||
                attempt.outcome.retryAfter !== "1" ||
                !/"_tag":"QueueStoreError"/.test(attempt.outcome.body)
            )
            .map(
              (attempt) => `${attempt.key}: ${Math.round(attempt.ms)} ms ${JSON.stringify(attempt.outcome)}`
            ),
          random.explain(
            "requests while PostgreSQL was down that were not a typed 503 with Retry-After within 2 s"
          )
        ).toEqual([])
        const recovered = attempts.filter(
          (attempt) =>
            attempt.at > backAt && attempt.outcome._tag === "Status" && attempt.outcome.status === 201
        )
        expect(
          recovered.length,
          random.explain(`sends after PostgreSQL came back; ${summary}`)
        ).toBeGreaterThan(100)
        expect(consumer.archived(), random.explain("the consumers did not resume")).toBeGreaterThan(
          archivedBeforeStart
        )

        const acknowledged = Load.acknowledged(attempts)
        const stored = yield* Load.stored(database.dsn)
        expect(
          acknowledged.filter((key) => stored.counts.get(key) !== 1),
          random.explain("acknowledged sends not stored exactly once")
        ).toEqual([])
        expect(
          [...stored.counts].filter(([, count]) => count > 1),
          random.explain("stored twice")
        ).toEqual([])
        expect(stored.places.queued ?? 0, "messages left in the queue after the drain").toBe(0)
        const slowest = Math.round(Math.max(...attempts.map((attempt) => attempt.ms)))
        console.log(
          `postgres away: ${attempts.length} sends (${summary}), ${whileDown.length} while down, slowest ${slowest} ms, ` +
            `archived ${JSON.stringify(stored.places)}, seed ${random.seed}`
        )
      }),
    240_000
  )
})
