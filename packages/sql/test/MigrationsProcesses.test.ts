import { fileURLToPath } from "node:url"
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { Database, Migrations } from "@keel/sql"
import { Duration, Effect, Schedule, Schema, type Scope } from "effect"
import { childMigrations } from "./fixtures/migrate-child.js"
import * as Processes from "./support/Processes.js"
import * as TestDatabase from "./support/TestDatabase.js"

const child = fileURLToPath(new URL("./fixtures/migrate-child.ts", import.meta.url))

const childCount = 4

const versions = childMigrations.migrations.map((migration) => migration.version)

/** What a child prints after each round. */
const Report = Schema.parseJson(
  Schema.Struct({
    round: Schema.Number,
    index: Schema.Number,
    startedAt: Schema.Number,
    applied: Schema.Array(Schema.Number)
  })
)

/** The complete lines a child has printed so far. */
const linesOf = (output: string): ReadonlyArray<string> => output.split("\n").slice(0, -1)

/**
 * Waits until the child has printed a line matching `wanted` (true), or has exited: then true only
 * if the line is in everything it printed (a child that prints its last report and exits at once
 * can exit before the next poll sees the line).
 */
const printed = (running: Processes.Child, wanted: (line: string) => boolean): Effect.Effect<boolean> =>
  Effect.race(
    Effect.as(
      Effect.repeat(
        Effect.sync(() => linesOf(running.stdout()).some(wanted)),
        { until: (found) => found, schedule: Schedule.spaced(Duration.millis(5)) }
      ),
      true
    ),
    Effect.map(running.exited, (exit) => linesOf(exit.stdout).some(wanted))
  )

/** Runs `each` on every item at once. */
const all = <T, A, E, R>(items: ReadonlyArray<T>, each: (item: T) => Effect.Effect<A, E, R>) =>
  Effect.forEach(items, each, { concurrency: "unbounded" })

/** What the database says after a round, read through a connection of its own. */
const afterwards = (dsn: string) =>
  Effect.provide(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const table = Migrations.tableName(childMigrations)
      const recorded = yield* sql<{ version: number }>`SELECT version FROM ${sql(table)} ORDER BY version`
      const seeds = yield* sql<{ n: number }>`SELECT COUNT(*) AS n FROM child_seeds`
      const status = yield* Migrations.status(childMigrations)
      return {
        recorded: recorded.map((row) => Number(row.version)),
        seeds: Number(seeds[0]?.n ?? 0),
        states: status.map((entry) => entry.state)
      }
    }),
    Database.layer(dsn)
  )

/** How one round went: how far apart the children started, and how many applied something. */
interface Round {
  readonly startSpreadMs: number
  readonly appliers: number
}

/**
 * Races `childCount` processes once per fresh database in `dsns`. The children boot once (tsx
 * takes ~1.5 s idle and up to ~10 s on a loaded 2-CPU machine, too long and too variable for a
 * start instant fixed in advance); before each round every child says `ready <round>` and waits,
 * and one SIGUSR2 to each releases them all within milliseconds. Each round every child opens
 * the fresh database and migrates it. Every child must exit 0; in every round each version must
 * have been applied by exactly one child, and recorded once.
 */
const race = (dsns: ReadonlyArray<string>): Effect.Effect<ReadonlyArray<Round>, unknown, Scope.Scope> =>
  Effect.gen(function* () {
    const children = yield* all(
      Array.from({ length: childCount }, (_, index) => index),
      (index) =>
        Processes.spawn({
          script: child,
          args: dsns,
          env: { KEEL_START_ON_SIGNAL: "1", KEEL_CHILD_INDEX: String(index) }
        })
    )
    const rounds: Array<Round> = []
    for (const [round, dsn] of dsns.entries()) {
      const ready = yield* all(children, (running) => printed(running, (line) => line === `ready ${round}`))
      if (!ready.every((isReady) => isReady)) break
      yield* Effect.forEach(children, (running) => running.kill("SIGUSR2"), { discard: true })
      const reported = yield* all(children, (running) =>
        printed(running, (line) => line.startsWith(`{"round":${round},`))
      )
      if (!reported.every((isReported) => isReported)) break
      const reports = yield* all(children, (running) =>
        Schema.decodeUnknown(Report)(
          linesOf(running.stdout()).find((line) => line.startsWith(`{"round":${round},`))
        )
      )
      const applied = reports.flatMap((report) => report.applied).sort((a, b) => a - b)
      expect(applied, `round ${round}`).toEqual(versions)
      expect(yield* afterwards(dsn), `round ${round}`).toEqual({
        recorded: versions,
        seeds: 1,
        states: versions.map(() => "applied")
      })
      const started = reports.map((report) => report.startedAt)
      rounds.push({
        startSpreadMs: Math.max(...started) - Math.min(...started),
        appliers: reports.filter((report) => report.applied.length > 0).length
      })
    }
    if (rounds.length < dsns.length) {
      // A child failed: the others wait for a signal that will not come.
      yield* Effect.forEach(children, (running) => running.kill("SIGKILL"), { discard: true })
    }
    const exits = yield* all(children, (running) => running.exited)
    expect(exits.map((exit) => ({ code: exit.code, signal: exit.signal, stderr: exit.stderr }))).toEqual(
      exits.map(() => ({ code: 0, signal: null, stderr: "" }))
    )
    expect(rounds).toHaveLength(dsns.length)
    return rounds
  })

describe("Migrations across processes", () => {
  it.live.runIf(TestDatabase.kinds.includes("sqlite"))(
    "four processes starting at once on a fresh SQLite file all succeed and apply each migration once",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const files = yield* Effect.forEach(Array.from({ length: 5 }), () => TestDatabase.fresh("sqlite"))
          const rounds = yield* race(files.map((file) => file.dsn))
          yield* Effect.logDebug("sqlite rounds", rounds)
        })
      ),
    60_000
  )

  it.live.runIf(TestDatabase.kinds.includes("postgres"))(
    "four processes starting at once on a fresh PostgreSQL database all succeed and apply each migration once",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const databases = yield* Effect.forEach(
            Array.from({ length: 2 }),
            () => TestDatabase.postgresDatabase
          )
          const rounds = yield* race(databases)
          yield* Effect.logDebug("postgres rounds", rounds)
        })
      ),
    60_000
  )
})
