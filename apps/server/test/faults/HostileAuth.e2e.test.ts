/**
 * With `KEEL_TOKEN` set, every operation of the served OpenAPI document (so every route, with no
 * hand-written list) answers 401 without a token and with a wrong one — before its body is read
 * or its input validated — except the public paths (`/health`), which answer without one.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Predicate } from "effect"
import { publicPaths } from "../../src/Auth.js"
import { expectOk } from "../support/Expect.js"
import * as RawHttp from "../support/RawHttp.js"
import { routes } from "../support/Routes.js"
import * as TestServer from "../support/TestServer.js"

const right = { authorization: `Bearer ${TestServer.token}` }
const wrongs: ReadonlyArray<Readonly<Record<string, string>>> = [
  {},
  { authorization: `Bearer ${TestServer.token.slice(0, -1)}x` },
  { authorization: "Bearer " },
  { authorization: TestServer.token }
]

/** Every (method, path) of an OpenAPI document, path parameters filled with `x`. */
const operations = (document: Record<string, unknown>): ReadonlyArray<readonly [string, string]> =>
  Object.entries(Predicate.isRecord(document.paths) ? document.paths : {}).flatMap(([path, item]) =>
    Object.keys(Predicate.isRecord(item) ? item : {}).map(
      (method) => [method.toUpperCase(), path.replace(/\{\w+\}/g, "x")] as const
    )
  )

describe("bearer auth on every route [sqlite]", () => {
  layer(TestServer.layer("sqlite", { KEEL_TOKEN: TestServer.token }), {
    timeout: 120_000,
    excludeTestServices: true
  })((it) => {
    it.effect(
      "every operation of the OpenAPI document but /health answers 401 without the token or with a wrong one",
      () =>
        Effect.gen(function* () {
          const server = yield* TestServer.TestServer
          const document = expectOk(
            yield* TestServer.request(server, "GET", "/openapi.json", { headers: right })
          )
          const all = operations(document)
          expect(all.length).toBe(routes.length)
          let checked = 0
          for (const [method, path] of all) {
            const body = method === "GET" || method === "DELETE" ? undefined : { anything: 1 }
            for (const headers of wrongs) {
              const reply = yield* TestServer.request(server, method, path, { body, headers })
              const expected = publicPaths.has(path) ? 200 : 401
              expect({ method, path, headers, status: reply.status }).toEqual({
                method,
                path,
                headers,
                status: expected
              })
              checked++
            }
            // The right token gets past auth (whatever the route then says about `x`).
            expect(
              (yield* TestServer.request(server, method, path, { body, headers: right })).status
            ).not.toBe(401)
          }
          console.log(
            `auth: ${all.length} operations × ${wrongs.length} missing or wrong tokens, ${checked} requests`
          )
        })
    )

    it.effect("without the token an oversized or malformed body is refused 401 before it is read", () =>
      Effect.gen(function* () {
        const server = yield* TestServer.TestServer
        const outcome = yield* RawHttp.send(
          { port: server.port, timeoutMs: 5_000 },
          RawHttp.request("POST /queues HTTP/1.1", [
            ["Host", "127.0.0.1"],
            ["Content-Type", "application/json"],
            ["Content-Length", String(100 * 1024 * 1024)]
          ])
        )
        expect(RawHttp.replyOf(outcome).status).toBe(401)
        const malformed = yield* TestServer.request(server, "POST", "/queues", { body: "{not json" })
        expect(malformed.status).toBe(401)
      })
    )
  })
})
