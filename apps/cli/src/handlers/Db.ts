/**
 * The programs of `keel db …` (loaded on demand): only the database layer, no service (a service
 * would apply its migrations as it starts and `status` would never show one pending).
 */
import * as Cursor from "@keel/cursor/Cursor"
import * as Queue from "@keel/queue/Queue"
import * as Schedule from "@keel/queue/Schedule"
import * as Reservation from "@keel/reservation/Reservation"
import * as Backend from "@keel/sql/Backend"
import * as Migrations from "@keel/sql/Migrations"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { DbInput } from "../commands/Db.js"
import * as Layers from "../Layers.js"
import * as Output from "../Output.js"

/** Every package's migrations, in the order `migrate` applies them. */
export const packages: ReadonlyArray<readonly [name: string, set: Migrations.MigrationSet]> = [
  ["queue", Queue.migrations],
  // The schedules' table refers to the queue's.
  ["schedule", Schedule.migrations],
  ["reservation", Reservation.migrations],
  ["cursor", Cursor.migrations]
]

const withDatabase = <E, R>(program: Effect.Effect<void, E, R>) => Effect.provide(program, Layers.database)

/** `keel db migrate`. */
export const migrate = (_input: DbInput) =>
  withDatabase(
    Effect.gen(function* () {
      const backend = yield* Backend.Backend
      const results = yield* Effect.forEach(packages, ([name, set]) =>
        Effect.map(Migrations.run(set), (applied) => ({
          package: name,
          applied,
          version: set.migrations.at(-1)?.version ?? 0
        }))
      )
      yield* Output.confirmation({ database: backend.dsn, backend: backend.kind, packages: results }, () =>
        results
          .map((result) =>
            result.applied.length === 0
              ? `${result.package}: up to date (version ${result.version})`
              : `${result.package}: applied ${result.applied.map((step) => `${step.version} ${step.name}`).join(", ")}`
          )
          .join("\n")
      )
    })
  )

/** `keel db status`. */
export const status = (_input: DbInput) =>
  withDatabase(
    Effect.gen(function* () {
      const backend = yield* Backend.Backend
      const results = yield* Effect.forEach(packages, ([name, set]) =>
        Effect.map(Migrations.status(set), (migrations) => ({
          package: name,
          version: migrations.filter((step) => step.state === "applied").at(-1)?.version ?? 0,
          latest: set.migrations.at(-1)?.version ?? 0,
          migrations: migrations.map((step) => ({
            version: step.version,
            name: step.name,
            state: step.state,
            appliedAt: Option.getOrNull(Option.map(step.appliedAt, (at) => at.toISOString()))
          }))
        }))
      )
      yield* Output.result({ database: backend.dsn, backend: backend.kind, packages: results }, () =>
        [
          `database: ${backend.dsn} (${backend.kind})`,
          Output.table(
            ["PACKAGE", "VERSION", "MIGRATION", "STATE", "APPLIED"],
            results.flatMap((result) =>
              result.migrations.map((step) => [
                result.package,
                String(step.version),
                step.name,
                step.state,
                step.appliedAt ?? "-"
              ])
            )
          )
        ].join("\n")
      )
    })
  )
