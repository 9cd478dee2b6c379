/**
 * Start and restart under load: 16 HTTP clients send to `keel serve` on SQLite while the server
 * is SIGKILLed at seeded random moments and started again, 20 times. Every acknowledged (201)
 * send is stored exactly once, nothing is stored twice, and no request waits more than 2 s: a
 * request that reaches a server still starting is refused or answered 503 at once, never held.
 */
import { describe, expect, it } from "@effect/vitest"
import { Files, Seed, TestDatabase } from "@keel/testkit"
import { Duration, Effect } from "effect"
import { expectOk } from "../support/Expect.js"
import * as Load from "../support/Load.js"
import * as TestServer from "../support/TestServer.js"

const kills = 20
const clients = 16
const hangMs = 2_000

describe("HTTP server under SIGKILL and restart [sqlite]", () => {
  it.scopedLive(
    `${kills} kills under ${clients} clients: every 201 stored once, none twice, no request over ${hangMs} ms`,
    () =>
      Effect.gen(function* () {
        const random = Seed.generator()
        const database = yield* Effect.orDie(TestDatabase.fresh("sqlite"))
        const port = yield* Files.freePort
        const env = { KEEL_PORT: String(port) }
        let server = yield* TestServer.start(database, env)
        expectOk(yield* TestServer.request(server, "POST", "/queues", { body: { name: "faults" } }), 201)
        const load = yield* Load.start({ url: server.url, queue: "faults", clients, timeoutMs: 10_000 })
        for (let kill = 0; kill < kills; kill++) {
          yield* Effect.sleep(Duration.millis(random.int(50, 600)))
          yield* server.child.kill("SIGKILL")
          yield* server.child.exited
          // Sometimes at once, sometimes after a pause: requests meet a port nobody listens on.
          yield* Effect.sleep(Duration.millis(random.int(0, 1) === 0 ? 0 : random.int(10, 300)))
          server = yield* TestServer.start(database, env)
        }
        yield* Effect.sleep(Duration.millis(300))
        const attempts = yield* load.stop
        yield* server.child.kill("SIGTERM")
        yield* server.child.exited

        const acknowledged = Load.acknowledged(attempts)
        const stored = (yield* Load.stored(database.dsn)).counts
        const summary = JSON.stringify(Load.tally(attempts))
        const slow = Load.slowerThan(attempts, hangMs)
        expect(
          slow.map((attempt) => `${attempt.key}: ${Math.round(attempt.ms)} ms ${attempt.outcome._tag}`),
          random.explain(`requests over ${hangMs} ms; outcomes ${summary}`)
        ).toEqual([])
        expect(
          acknowledged.filter((key) => stored.get(key) !== 1),
          random.explain("acknowledged sends not stored exactly once")
        ).toEqual([])
        expect(
          [...stored].filter(([, count]) => count > 1),
          random.explain("sends stored twice")
        ).toEqual([])
        // The load really ran through the kills: most sends were acknowledged.
        expect(acknowledged.length).toBeGreaterThan(kills * clients)
        console.log(
          `restart: ${kills} kills, ${attempts.length} requests (${summary}), slowest ${Math.round(Math.max(...attempts.map((a) => a.ms)))} ms, seed ${random.seed}`
        )
      }),
    240_000
  )
})
