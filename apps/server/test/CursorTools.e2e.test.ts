/**
 * The cursor tools over HTTP (Kafka's consumer-group tools): lag against a head the caller gives,
 * a many-cursor reset (dry run first), export and import (one bad line writes nothing), and idle
 * expiry — on every backend the server runs on.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { expectError, expectOk, list } from "./support/Expect.js"
import * as TestServer from "./support/TestServer.js"

/** Background flushes an hour apart: the test flushes when it means to. */
const env = { KEEL_CURSOR_FLUSH_INTERVAL: "1 hour" }

const positions = (listed: ReadonlyArray<Record<string, unknown>>) =>
  Object.fromEntries(listed.map((cursor) => [String(cursor.peer), cursor.position]))

for (const kind of TestServer.kinds) {
  describe(`HTTP cursor tools [${kind}]`, () => {
    layer(TestServer.layer(kind, env), { timeout: 120_000, excludeTestServices: true })((it) => {
      it.effect("lag, a dry-run then real reset, export and import, expiry", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          expectOk(yield* http.put("/cursors/tools-a", { position: "1700000000000-5" }))
          expectOk(yield* http.put("/cursors/tools-b", { position: "1700000000100-0" }))
          expectOk(yield* http.post("/cursors/flush"))

          const lag = expectOk(yield* http.get("/cursors/tools-a/lag?head=1700000000200-0"))
          expect(lag).toMatchObject({ peer: "tools-a", position: "1700000000000-5", behind: true })
          const lags = list(expectOk(yield* http.get("/cursor-tools/lag?head=1700000000100-0")), "lags")
          expect(lags.filter((one) => String(one.peer).startsWith("tools-"))).toMatchObject([
            { peer: "tools-a", behind: true },
            { peer: "tools-b", behind: false }
          ])
          expectError(yield* http.get("/cursors/tools-a/lag?head=not-a-position"), 400, "InvalidPosition")

          const target = { _tag: "Position", position: "1600000000000-0" }
          const dry = expectOk(
            yield* http.post("/cursor-tools/reset", { target, peers: ["tools-a", "tools-b"], dryRun: true })
          )
          expect(dry).toMatchObject({ dryRun: true })
          expect(list(dry, "changes")).toHaveLength(2)
          expect(expectOk(yield* http.get("/cursors/tools-a"))).toMatchObject({ position: "1700000000000-5" })
          expectOk(yield* http.post("/cursor-tools/reset", { target, peers: ["tools-a"] }))
          expect(expectOk(yield* http.get("/cursors/tools-a"))).toMatchObject({ position: "1600000000000-0" })

          const exported = expectOk(yield* http.get("/cursor-tools/export"))
          const byPeer = positions(list(exported, "cursors"))
          expect(byPeer["tools-a"]).toBe("1600000000000-0")
          expect(byPeer["tools-b"]).toBe("1700000000100-0")
          // One bad line: nothing is written.
          expectError(
            yield* http.post("/cursor-tools/import", {
              cursors: [
                { peer: "tools-a", position: "1700000000300-0" },
                { peer: "tools-c", position: "not-a-position" }
              ]
            }),
            400,
            "InvalidPosition"
          )
          expect(expectOk(yield* http.get("/cursors/tools-a"))).toMatchObject({ position: "1600000000000-0" })
          expect(
            expectOk(
              yield* http.post("/cursor-tools/import", {
                cursors: [
                  { peer: "tools-a", position: "1700000000300-0" },
                  { peer: "tools-b", position: "1000-0" }
                ]
              })
            )
          ).toMatchObject({ dryRun: false, written: 1, skipped: ["tools-b"] })
          expect(expectOk(yield* http.get("/cursors/tools-a"))).toMatchObject({ position: "1700000000300-0" })

          // Nothing has been idle for an hour; everything has been idle for a millisecond.
          expect(expectOk(yield* http.post("/cursor-tools/expire", { idleForMs: 3_600_000 }))).toMatchObject({
            expired: []
          })
          yield* Effect.sleep("5 millis")
          const expiring = expectOk(yield* http.post("/cursor-tools/expire", { idleForMs: 1, dryRun: true }))
          expect(expiring.dryRun).toBe(true)
          expect(expiring.expired).toEqual(expect.arrayContaining(["tools-a", "tools-b"]))
          expectError(yield* http.post("/cursor-tools/expire", { idleForMs: 0 }), 400, "HttpApiDecodeError")
        })
      )
    })
  })
}
