import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Backend, Transaction } from "@keel/sql"
import { Context, Effect, Layer } from "effect"
import * as Libsql from "../src/internal/libsql.js"

// Remote libSQL (`libsql://`) runs transactions through the SDK's interactive transaction, because
// each plain request is stateless. No sqld server runs here, but the SDK's `file:` mode implements
// the same `transaction("write")` API, so the code path Keel uses for remote servers is exercised
// against a local file.
const dir = mkdtempSync(join(tmpdir(), "keel-libsql-remote-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const sdkTransactionLayer = Layer.scopedContext(
  Effect.gen(function* () {
    const opened = yield* Libsql.make({
      url: `file:${join(dir, "remote.db")}`,
      remote: true,
      authToken: undefined,
      pragmas: []
    })
    if (opened._tag !== "Remote") return yield* Effect.dieMessage("remote: true opens the remote path")
    const { client, sdk } = opened
    const backend = Backend.make({
      kind: "libsql",
      client,
      dsn: "libsql://example.invalid",
      singleSession: false,
      openTransaction: Libsql.sdkTransaction(sdk),
      notifications: yield* Backend.localNotifications
    })
    return Context.make(SqlClient.SqlClient, client).pipe(Context.add(Backend.Backend, backend))
  }).pipe(Effect.orDie)
).pipe(Layer.provide(Reactivity.layer))

describe("libSQL SDK transactions (the remote path)", () => {
  it.live("commits, rolls back, and types a failed COMMIT", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE TABLE parents (id INTEGER PRIMARY KEY)`
      yield* sql`CREATE TABLE children (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED)`
      yield* Transaction.immediate(sql`INSERT INTO parents (id) VALUES (1)`)
      const failed = yield* Transaction.immediate(
        Effect.zipRight(sql`INSERT INTO parents (id) VALUES (2)`, Effect.fail("body failed" as const))
      ).pipe(Effect.flip)
      expect(failed).toBe("body failed")
      yield* sql`PRAGMA foreign_keys = ON`
      const rejected = yield* Transaction.immediate(
        Effect.zipRight(
          sql`PRAGMA foreign_keys = ON`,
          sql`INSERT INTO children (id, parent_id) VALUES (1, 404)`
        )
      ).pipe(Effect.flip)
      expect(rejected._tag).toBe("CommitRejected")
      const parents = yield* sql<{ id: number }>`SELECT id FROM parents ORDER BY id`
      expect(parents.map((row) => row.id)).toEqual([1])
      const children = yield* sql<{ n: number }>`SELECT COUNT(*) AS n FROM children`
      expect(children[0]?.n).toBe(0)
    }).pipe(Effect.provide(sdkTransactionLayer))
  )
})
