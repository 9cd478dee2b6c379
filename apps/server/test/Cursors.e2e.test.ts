import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { expectError, expectOk, list } from "./support/Expect.js"
import * as TestServer from "./support/TestServer.js"

/** An hour between background flushes: only `POST /cursors/flush` (or shutdown) persists. */
const env = { KEEL_CURSOR_FLUSH_INTERVAL: "1 hour" }

const cursorOf = (listed: ReadonlyArray<Record<string, unknown>>, peer: string) =>
  listed.find((cursor) => cursor.peer === peer)

for (const kind of TestServer.kinds) {
  describe(`HTTP cursors [${kind}]`, () => {
    layer(TestServer.layer(kind, env), { timeout: 120_000, excludeTestServices: true })((it) => {
      it.effect("set advances a peer, an older position is stale, flush persists it, get returns it", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          expect(expectOk(yield* http.put("/cursors/replica-a", { position: "1700000000000-5" }))).toEqual({
            peer: "replica-a",
            outcome: "advanced",
            position: "1700000000000-5"
          })
          expect(expectOk(yield* http.put("/cursors/replica-a", { position: "1700000000000-4" }))).toEqual({
            peer: "replica-a",
            outcome: "stale",
            position: "1700000000000-5"
          })
          expect(expectOk(yield* http.get("/cursors/replica-a"))).toEqual({
            peer: "replica-a",
            position: "1700000000000-5"
          })
          const before = expectOk(yield* http.get("/cursors"))
          expect(before.namespace).toBe("default")
          expect(cursorOf(list(before, "cursors"), "replica-a")).toMatchObject({
            pending: true,
            stored: null
          })
          const flushed = expectOk(yield* http.post("/cursors/flush"))
          expect(Number(flushed.persisted)).toBeGreaterThanOrEqual(1)
          const after = list(expectOk(yield* http.get("/cursors")), "cursors")
          expect(cursorOf(after, "replica-a")).toMatchObject({ pending: false, stored: "1700000000000-5" })
        })
      )

      it.effect("reset moves a peer backwards at once; delete removes it and get is then 404", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          expectOk(yield* http.put("/cursors/replica-b", { position: "900" }))
          expect(expectOk(yield* http.post("/cursors/replica-b/reset", { position: "12" }))).toEqual({
            peer: "replica-b",
            position: "12"
          })
          const listed = list(expectOk(yield* http.get("/cursors")), "cursors")
          expect(cursorOf(listed, "replica-b")).toMatchObject({
            position: "12",
            stored: "12",
            pending: false
          })
          expect(expectOk(yield* http.del("/cursors/replica-b"))).toEqual({ deleted: true })
          expect(expectOk(yield* http.del("/cursors/replica-b"))).toEqual({ deleted: false })
          expect(expectError(yield* http.get("/cursors/replica-b"), 404, "CursorNotFound")).toMatchObject({
            peer: "replica-b"
          })
        })
      )

      it.effect("a peer name is taken from the path percent-decoded, so any name round-trips", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          const peer = "group/consumer 1?x#y"
          const path = `/cursors/${encodeURIComponent(peer)}`
          expect(expectOk(yield* http.put(path, { position: "7" }))).toMatchObject({ peer, position: "7" })
          expect(expectOk(yield* http.get(path))).toEqual({ peer, position: "7" })
        })
      )

      it.effect("malformed positions and peers are 400 naming the field, and nothing is recorded", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          const position = expectError(
            yield* http.put("/cursors/replica-c", { position: "007" }),
            400,
            "InvalidPosition"
          )
          expect(position).toMatchObject({ field: "position", position: "007" })
          expectError(yield* http.put("/cursors/replica-c", { position: "1-2-3" }), 400, "InvalidPosition")
          expectError(
            yield* http.post("/cursors/replica-c/reset", { position: "-1" }),
            400,
            "InvalidPosition"
          )
          const peer = expectError(
            yield* http.put(`/cursors/${encodeURIComponent(" padded")}`, { position: "1" }),
            400,
            "InvalidPeer"
          )
          expect(peer.field).toBe("peer")
          expectError(yield* http.get(`/cursors/${encodeURIComponent("x".repeat(300))}`), 400, "InvalidPeer")
          expectError(yield* http.del(`/cursors/${encodeURIComponent("tab\there")}`), 400, "InvalidPeer")
          expectError(yield* http.put("/cursors/replica-c", { position: 5 }), 400, "HttpApiDecodeError")
          expectError(yield* http.get("/cursors/replica-c"), 404, "CursorNotFound")
        })
      )
    })
  })
}
