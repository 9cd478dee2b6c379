/**
 * One SQLite library per database file per process.
 *
 * better-sqlite3 and libSQL each bundle their own copy of SQLite, and the Turso engine is a
 * rewrite with locks of its own. POSIX file locks belong to the
 * process, and each copy keeps its own table of them, so within ONE process a better-sqlite3
 * connection and a libSQL connection to the same file do not see each other's locks: both can
 * hold BEGIN IMMEDIATE at once and a committed write is lost (measured; across processes the
 * locks work). Opening a file through the other driver while it is open is therefore refused.
 * The registry is process-wide because the hazard is.
 */
import { resolve } from "node:path"
import type { Scope } from "effect"
import * as Effect from "effect/Effect"
import { SetupFailed } from "../DbError.js"

type Driver = "sqlite" | "libsql" | "turso"

const claims = new Map<string, { readonly driver: Driver; count: number }>()

/** The absolute path of a file DSN's database, or undefined for in-memory databases. */
export const databaseFile = (path: string): string | undefined =>
  path === "" || path.includes(":memory:") || path.startsWith("file::memory:") ? undefined : resolve(path)

/** Claims `file` for `driver` for the scope; fails if the other driver has it open in this process. */
export const claim = (
  file: string | undefined,
  driver: Driver,
  backend: string
): Effect.Effect<void, SetupFailed, Scope.Scope> =>
  file === undefined
    ? Effect.void
    : Effect.acquireRelease(
        Effect.suspend(() => {
          const held = claims.get(file)
          if (held !== undefined && held.driver !== driver) {
            return Effect.fail(
              new SetupFailed({
                backend,
                setting: "driver",
                expected: `${held.driver} (the file is already open through it in this process, and two SQLite engines in one process ignore each other's locks)`,
                actual: driver
              })
            )
          }
          if (held === undefined) claims.set(file, { driver, count: 1 })
          else held.count++
          return Effect.void
        }),
        () =>
          Effect.sync(() => {
            const held = claims.get(file)
            if (held === undefined) return
            held.count--
            if (held.count === 0) claims.delete(file)
          })
      )
