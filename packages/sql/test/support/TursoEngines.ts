/**
 * The Turso engine versions Keel's tests run on: the current `@tursodatabase/database` and 0.4.4,
 * the engine seed 000's phantom duplicates happened on (the devDependency alias `turso-0.4.4`).
 * Resolved from here, so that every package's tests can load them through `@keel/sql/test/*`.
 */
import type { TursoClient } from "@keel/sql"
import { Effect } from "effect"

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
