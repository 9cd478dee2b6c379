/**
 * A crash in the middle of group commits loses no acknowledged write: a child process commits
 * groups of eight plans as fast as it can and prints each id once its COMMIT succeeded; it is
 * killed with SIGKILL mid-stream, and every id it printed is in the database afterwards.
 */

import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { Database } from "@keel/sql"
import { Duration, Effect, Schedule } from "effect"
import * as Processes from "./support/Processes.js"
import * as TestDatabase from "./support/TestDatabase.js"

const child = fileURLToPath(new URL("./fixtures/group-child.ts", import.meta.url))

const acknowledged = (output: string): ReadonlyArray<number> =>
  output
    .split("\n")
    .filter((line) => line.startsWith("acked "))
    .map((line) => Number(line.slice("acked ".length)))

describe("GroupCommit processes", () => {
  for (const kind of TestDatabase.kinds) {
    it.scopedLive(
      `[${kind}] a SIGKILL in the middle of group commits loses no acknowledged write`,
      () =>
        Effect.gen(function* () {
          const info = yield* TestDatabase.fresh(kind)
          // PGlite in memory does not outlive its process: use a data directory.
          const dsn = kind === "pglite" ? `pglite:${join(info.dir, "pglite")}` : info.dsn
          const running = yield* Processes.spawn({ script: child, env: { KEEL_DB: dsn } })
          yield* Effect.repeat(
            Effect.sync(() => acknowledged(running.stdout()).length),
            { until: (n) => n >= 400, schedule: Schedule.spaced(Duration.millis(5)) }
          ).pipe(Effect.timeout(Duration.seconds(60)))
          yield* running.kill("SIGKILL")
          const exited = yield* running.exited
          expect(exited.signal).toBe("SIGKILL")
          const printed = acknowledged(exited.stdout)
          const stored = yield* Effect.provide(
            Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ id: number }>`SELECT id FROM acked`),
            Database.layer(dsn)
          )
          const ids = new Set(stored.map((row) => Number(row.id)))
          expect(printed.length).toBeGreaterThanOrEqual(400)
          expect(printed.filter((id) => !ids.has(id))).toEqual([])
        }),
      120_000
    )
  }
})
