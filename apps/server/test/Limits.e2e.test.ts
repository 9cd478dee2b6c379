/**
 * A queue's limits and group settings over HTTP: `concurrencyLimit`, `rateLimit` (`interval` in
 * milliseconds), `groupConcurrency` and `groupOnDead` on `POST /queues` and `PATCH /queues/{name}`,
 * read back by every queue route, removed with null, refused as 400 `InvalidOption` naming the
 * field (nothing created or changed), and described by the OpenAPI document.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { expectError, expectOk, list } from "./support/Expect.js"
import * as TestServer from "./support/TestServer.js"

const limited = {
  concurrencyLimit: 5,
  rateLimit: { limit: 100, interval: 1000 },
  groupConcurrency: 3,
  groupOnDead: "block"
}

/** The value at `keys` inside a JSON `value`, or undefined. */
const at = (value: unknown, ...keys: ReadonlyArray<string>): unknown =>
  keys.reduce<unknown>(
    (inner, key) => (typeof inner === "object" && inner !== null ? Reflect.get(inner, key) : undefined),
    value
  )

for (const kind of TestServer.kinds) {
  describe(`HTTP queue limits [${kind}]`, () => {
    layer(TestServer.layer(kind), { timeout: 120_000, excludeTestServices: true })((it) => {
      it.effect(
        "the four settings round-trip through create, info, list and update; null removes a limit",
        () =>
          Effect.gen(function* () {
            const http = yield* TestServer.client
            const created = expectOk(yield* http.post("/queues", { name: "limited", ...limited }), 201)
            expect(created).toMatchObject({ name: "limited", ...limited })
            expect(expectOk(yield* http.get("/queues/limited"))).toMatchObject(limited)
            const listed = list(expectOk(yield* http.get("/queues")), "queues")
            expect(listed.find((queue) => queue.name === "limited")).toMatchObject(limited)

            const plain = expectOk(yield* http.post("/queues", { name: "plain" }), 201)
            expect(plain).toMatchObject({
              concurrencyLimit: null,
              rateLimit: null,
              groupConcurrency: 1,
              groupOnDead: "skip"
            })

            const changed = expectOk(
              yield* http.patch("/queues/limited", {
                concurrencyLimit: null,
                rateLimit: { limit: 5, interval: 250 },
                groupConcurrency: 1,
                groupOnDead: "skip"
              })
            )
            expect(changed).toMatchObject({
              concurrencyLimit: null,
              rateLimit: { limit: 5, interval: 250 },
              groupConcurrency: 1,
              groupOnDead: "skip"
            })
            // Absent fields keep their value; null removes only the field it is given for.
            const removed = expectOk(
              yield* http.patch("/queues/limited", { rateLimit: null, concurrencyLimit: 9 })
            )
            expect(removed).toMatchObject({
              concurrencyLimit: 9,
              rateLimit: null,
              groupConcurrency: 1,
              groupOnDead: "skip",
              maxDeliveries: created.maxDeliveries
            })
            expect(expectOk(yield* http.get("/queues/limited"))).toMatchObject({
              concurrencyLimit: 9,
              rateLimit: null
            })
          })
      )

      it.effect("a bad value of each is 400 InvalidOption naming it; nothing is created or changed", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          const cases: ReadonlyArray<readonly [Record<string, unknown>, string]> = [
            [{ concurrencyLimit: 0 }, "concurrencyLimit"],
            [{ concurrencyLimit: 100_001 }, "concurrencyLimit"],
            [{ concurrencyLimit: 1.5 }, "concurrencyLimit"],
            [{ rateLimit: { limit: 0, interval: 1000 } }, "rateLimit.limit"],
            [{ rateLimit: { limit: 1_000_001, interval: 1000 } }, "rateLimit.limit"],
            [{ rateLimit: { limit: 10, interval: 0 } }, "rateLimit.interval"],
            [{ rateLimit: { limit: 10, interval: 86_400_001 } }, "rateLimit.interval"],
            [{ groupConcurrency: 0 }, "groupConcurrency"],
            [{ groupConcurrency: 1001 }, "groupConcurrency"],
            [{ groupOnDead: "explode" }, "groupOnDead"]
          ]
          expectOk(yield* http.post("/queues", { name: "guarded", ...limited }), 201)
          for (const [settings, option] of cases) {
            const refused = expectError(
              yield* http.post("/queues", { name: "refused", ...settings }),
              400,
              "InvalidOption"
            )
            expect({ settings, option: refused.option }).toEqual({ settings, option })
            const unchanged = expectError(
              yield* http.patch("/queues/guarded", settings),
              400,
              "InvalidOption"
            )
            expect({ settings, option: unchanged.option }).toEqual({ settings, option })
          }
          expectError(yield* http.get("/queues/refused"), 404, "QueueNotFound")
          expect(expectOk(yield* http.get("/queues/guarded"))).toMatchObject(limited)
          // A rate limit without its interval is not the shape of one.
          expectError(
            yield* http.patch("/queues/guarded", { rateLimit: { limit: 5 } }),
            400,
            "HttpApiDecodeError"
          )
        })
      )

      it.effect(
        "the OpenAPI document describes the four settings on create and update, and returns them",
        () =>
          Effect.gen(function* () {
            const http = yield* TestServer.client
            const document = expectOk(yield* http.get("/openapi.json"))
            for (const path of ["/queues", "/queues/{name}"]) {
              const method = path === "/queues" ? "post" : "patch"
              const properties = at(document, "paths", path, method, "requestBody", "content")
              const described = (field: string) =>
                at(properties, "application/json", "schema", "properties", field, "description")
              for (const field of ["concurrencyLimit", "rateLimit", "groupConcurrency", "groupOnDead"]) {
                expect({ path, field, described: typeof described(field) }).toEqual({
                  path,
                  field,
                  described: "string"
                })
              }
              expect(described("groupOnDead")).toMatch(/`skip`.*`block`/)
              expect(described("rateLimit")).toMatch(/`interval` ms/)
            }
            const info = at(document, "components", "schemas", "QueueInfo", "properties")
            expect(Object.keys(info ?? {})).toEqual(
              expect.arrayContaining(["concurrencyLimit", "rateLimit", "groupConcurrency", "groupOnDead"])
            )
            expect(at(info, "groupOnDead", "enum")).toEqual(["skip", "block"])
          })
      )
    })
  })
}
