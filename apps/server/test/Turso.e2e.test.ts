/**
 * The HTTP service on a `turso:` database (the Turso engine): it starts, migrates, and a message
 * sent over HTTP is read back once. The other HTTP suites run on SQLite and PostgreSQL.
 */
import { describe, expect, layer } from "@effect/vitest"
import { TestDatabase } from "@keel/testkit"
import { Effect } from "effect"
import { expectOk, list } from "./support/Expect.js"
import * as TestServer from "./support/TestServer.js"

describe.runIf(TestDatabase.kinds.includes("turso"))("HTTP on turso:", () => {
  layer(TestServer.layer("turso"), { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("a queue is created, a message sent over HTTP is read back once", () =>
      Effect.gen(function* () {
        const http = yield* TestServer.client
        expectOk(yield* http.post("/queues", { name: "turso" }), 201)
        const { id } = expectOk(yield* http.post("/queues/turso/messages", { payload: { n: 1 } }), 201)
        const read = list(expectOk(yield* http.post("/queues/turso/read", { qty: 5 })), "messages")
        expect(read).toMatchObject([{ id, payload: { n: 1 }, deliveries: 1 }])
        expect(list(expectOk(yield* http.post("/queues/turso/read", {})), "messages")).toHaveLength(0)
      })
    )
  })
})
