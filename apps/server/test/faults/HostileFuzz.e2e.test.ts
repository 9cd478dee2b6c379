/**
 * Every route of the API fuzzed from its own Schemas (`support/Fuzz.ts`), over raw HTTP against
 * the real server on SQLite: valid requests and hostile mutations of their bodies, path
 * parameters, query strings, headers and request lines. Whatever arrives, the server answers
 * within a few seconds (a long-poll `read` within its wait), never with a 5xx, and every 4xx is
 * JSON with a string `_tag` and `message`. The server runs with short transport timeouts (1 s for
 * headers, 2 s for a request), so incomplete requests are cut with a 408 and valid ones — long
 * polls included — are shown not to be. Seeded: a failure names the seed (`KEEL_FAULT_SEED`).
 */
import { describe, expect, it } from "@effect/vitest"
import { Seed, TestDatabase } from "@keel/testkit"
import { Effect, FastCheck as fc } from "effect"
import * as Fuzz from "../support/Fuzz.js"
import * as RawHttp from "../support/RawHttp.js"
import { routes } from "../support/Routes.js"
import * as TestServer from "../support/TestServer.js"

/** Requests per route (`KEEL_FUZZ_RUNS` overrides): 36 routes × 200, 8 at a time, take 15–30 s on 2 cores. */
const runsPerRoute = Number(process.env.KEEL_FUZZ_RUNS ?? 200)
const concurrency = 8
/** The known queue and cursor are made again every this many requests (a fuzzed DELETE removes them). */
const prepareEvery = 300
const known: Fuzz.Known = { queue: "fuzz", peer: "fuzz-peer" }

/** The cases of every route, interleaved so that no route's slow cases hold the others back. */
const interleave = (perRoute: ReadonlyArray<ReadonlyArray<Fuzz.Case>>): ReadonlyArray<Fuzz.Case> =>
  Array.from({ length: Math.max(0, ...perRoute.map((cases) => cases.length)) }, (_, index) =>
    perRoute.flatMap((cases) => (index < cases.length ? [cases[index]] : []))
  )
    .flat()
    .flatMap((request) => (request === undefined ? [] : [request]))

describe("hostile HTTP input [sqlite]", () => {
  it.scopedLive(
    `every route, ${runsPerRoute} generated requests each: no 5xx, no hang, every 4xx a JSON { _tag, message }`,
    () =>
      Effect.gen(function* () {
        const random = Seed.generator()
        const database = yield* Effect.orDie(TestDatabase.fresh("sqlite"))
        const server = yield* TestServer.start(database, {
          KEEL_HEADERS_TIMEOUT: "1 second",
          KEEL_REQUEST_TIMEOUT: "2 seconds"
        })
        // Names that exist, so that requests get past "not found" into the services.
        const prepare = Effect.gen(function* () {
          yield* TestServer.request(server, "POST", "/queues", { body: { name: known.queue } })
          yield* TestServer.request(server, "POST", `/queues/${known.queue}/messages/batch`, {
            body: { messages: Array.from({ length: 20 }, (_, index) => ({ payload: { index } })) }
          })
          yield* TestServer.request(server, "PUT", `/cursors/${known.peer}`, { body: { position: "1-0" } })
        })
        const cases = interleave(
          routes.map((route) =>
            fc.sample(Fuzz.cases(route, known), { seed: random.seed, numRuns: runsPerRoute })
          )
        )
        const failures: Array<string> = []
        const statuses = new Map<number | string, number>()
        let slowest = { ms: 0, route: "" }
        const started = performance.now()
        yield* Effect.forEach(
          cases,
          (request, index) =>
            Effect.gen(function* () {
              if (index % prepareEvery === 0) yield* prepare
              const outcome = yield* RawHttp.send(
                { port: server.port, timeoutMs: request.timeoutMs, head: request.head },
                request.bytes
              )
              const ms = outcome._tag === "Reply" ? outcome.reply.ms : outcome.ms
              if (ms > slowest.ms) slowest = { ms, route: request.route }
              const status = outcome._tag === "Reply" ? outcome.reply.status : outcome._tag
              statuses.set(status, (statuses.get(status) ?? 0) + 1)
              for (const problem of Fuzz.problems(request, outcome)) {
                failures.push(
                  `${request.route} [${request.kind}]: ${problem}\n    request: ${Fuzz.show(request)}`
                )
              }
            }),
          { concurrency, discard: true }
        )
        const seconds = ((performance.now() - started) / 1000).toFixed(1)
        const health = yield* TestServer.request(server, "GET", "/health")
        console.log(
          `hostile fuzz: ${cases.length} requests over ${routes.length} routes in ${seconds} s, ` +
            `statuses ${JSON.stringify(Object.fromEntries(statuses))}, slowest ${Math.round(slowest.ms)} ms ` +
            `(${slowest.route}), ${failures.length} failures, seed ${random.seed}`
        )
        expect(
          failures.slice(0, 20),
          random.explain(`${failures.length} of ${cases.length} requests answered badly`)
        ).toEqual([])
        expect(health.status, "the server still answers after the fuzzing").toBe(200)
        expect(cases.length).toBe(routes.length * runsPerRoute)
      }),
    180_000
  )
})
