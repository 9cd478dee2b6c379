import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as SqlClient from "@effect/sql/SqlClient"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Database } from "@keel/sql"
import { Effect, Exit, Layer, Scope } from "effect"

const dir = mkdtempSync(join(tmpdir(), "keel-claims-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const open = (dsn: string) =>
  Effect.flatMap(Scope.make(), (scope) =>
    Effect.map(Effect.exit(Layer.buildWithScope(Database.layer(dsn), scope)), (exit) => ({ exit, scope }))
  )

describe("one SQLite library per file per process", () => {
  it.live(
    "a file open through sqlite: cannot be opened through libSQL in the same process, and vice versa",
    () =>
      Effect.gen(function* () {
        const file = join(dir, "shared.db")
        const first = yield* open(`sqlite:${file}`)
        expect(Exit.isSuccess(first.exit)).toBe(true)
        const second = yield* open(`file:${file}`)
        expect(Exit.isFailure(second.exit)).toBe(true)
        if (Exit.isFailure(second.exit)) expect(JSON.stringify(second.exit.cause)).toContain("SetupFailed")
        // The same driver twice is fine: one SQLite copy sees its own locks.
        const again = yield* open(`sqlite:${file}`)
        expect(Exit.isSuccess(again.exit)).toBe(true)
        yield* Scope.close(again.scope, Exit.void)
        yield* Scope.close(first.scope, Exit.void)
        // Once every sqlite: handle is closed, libSQL may open it.
        const later = yield* open(`file:${file}`)
        expect(Exit.isSuccess(later.exit)).toBe(true)
        if (Exit.isSuccess(later.exit)) {
          const rows = yield* Effect.provide(
            Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1 AS one`),
            Layer.succeedContext(later.exit.value)
          )
          expect(rows).toEqual([{ one: 1 }])
        }
        const blocked = yield* open(`sqlite:${file}`)
        expect(Exit.isFailure(blocked.exit)).toBe(true)
        yield* Scope.close(later.scope, Exit.void)
      })
  )
})
