/**
 * The Turso engine versions Keel's tests run on: the current `@tursodatabase/database` and 0.4.4,
 * the engine seed 000's phantom duplicates happened on (the devDependency alias `turso-0.4.4`).
 * Resolved from here, so that every package's tests can load them through `@keel/sql/test/*`.
 */
import { createRequire } from "node:module"
import { pathToFileURL } from "node:url"
import type { TursoClient } from "@keel/sql"
import { Effect } from "effect"

const require = createRequire(import.meta.url)

/** `@tursodatabase/database` as installed (0.7.x). */
export const current: Effect.Effect<TursoClient.Engine> = Effect.promise(
  () => import("@tursodatabase/database")
)

/** `@tursodatabase/database@0.4.4`: no savepoints, triggers, CHECK or WITHOUT ROWID; seed 000's engine. */
export const seed000: Effect.Effect<TursoClient.Engine> = Effect.promise(() => import("turso-0.4.4"))

/** Both engines, named by version. */
export const engines: ReadonlyArray<readonly [string, Effect.Effect<TursoClient.Engine>]> = [
  ["0.7.2", current],
  ["0.4.4", seed000]
]

/**
 * Where each engine's module is, by version, for code that loads it on its own (a worker thread
 * imports it from this URL).
 */
export const urls: ReadonlyMap<string, string> = new Map([
  ["0.7.2", pathToFileURL(require.resolve("@tursodatabase/database")).href],
  ["0.4.4", pathToFileURL(require.resolve("turso-0.4.4")).href]
])
