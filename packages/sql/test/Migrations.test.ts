import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it, layer } from "@effect/vitest"
import { Backend, Migrations } from "@keel/sql"
import { Clock, Effect, Option, Schema } from "effect"
import * as TestDatabase from "./support/TestDatabase.js"

/** A migration whose statements read the same in both dialects. */
const migration = (
  version: number,
  name: string,
  ...statements: ReadonlyArray<string>
): Migrations.Migration => ({
  version,
  name,
  sqlite: statements,
  pg: statements
})

/**
 * Four migrations on tables prefixed with the set's name, each depending on the one before:
 * applied out of order, or twice, one of them fails.
 */
const fourSteps = (set: string): ReadonlyArray<Migrations.Migration> => [
  migration(1, "create_items", `CREATE TABLE ${set}_items (id INTEGER PRIMARY KEY, label TEXT NOT NULL)`),
  migration(2, "add_weight", `ALTER TABLE ${set}_items ADD COLUMN weight INTEGER NOT NULL DEFAULT 0`),
  migration(3, "seed_items", `INSERT INTO ${set}_items (id, label, weight) VALUES (1, 'first', 10)`),
  migration(
    4,
    "create_tags",
    `CREATE TABLE ${set}_tags (item_id INTEGER NOT NULL REFERENCES ${set}_items (id), tag TEXT NOT NULL)`,
    `CREATE INDEX ${set}_tags_item ON ${set}_tags (item_id)`
  )
]

const setOf = (name: string, migrations: ReadonlyArray<Migrations.Migration>): Migrations.MigrationSet => ({
  name,
  migrations
})

const Recorded = Schema.Struct({
  version: Schema.Number,
  name: Schema.String,
  checksum: Schema.String,
  applied_at: Schema.Number
})

/** The rows of the set's `keel_<set>_migrations` table, by version. */
const recorded = (set: Migrations.MigrationSet) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql`SELECT version, name, checksum, applied_at FROM ${sql(
      Migrations.tableName(set)
    )} ORDER BY version`
    return yield* Schema.decodeUnknown(Schema.Array(Recorded))(rows)
  })

const versionsOf = (rows: ReadonlyArray<{ readonly version: number }>) => rows.map((row) => row.version)

const tableExists = (table: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql.onDialectOrElse({
      pg: () =>
        sql`SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ${table}`,
      orElse: () => sql`SELECT name FROM sqlite_master WHERE type = 'table' AND name = ${table}`
    })
    return rows.length === 1
  })

const countRows = (table: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ n: number }>`SELECT COUNT(*) AS n FROM ${sql(table)}`
    return Number(rows[0]?.n ?? 0)
  })

const dialect = Effect.map(Backend.Backend, (backend) => backend.dialect)

TestDatabase.describeEach("Migrations", (kind) => {
  layer(TestDatabase.layer(kind), { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect(
      "pending migrations apply in order, each recorded with its version, name, checksum and time",
      () =>
        Effect.gen(function* () {
          const set = setOf("m_order", fourSteps("m_order"))
          const before = yield* Clock.currentTimeMillis
          const applied = yield* Migrations.run(set)
          const after = yield* Clock.currentTimeMillis
          expect(applied).toEqual([
            { version: 1, name: "create_items" },
            { version: 2, name: "add_weight" },
            { version: 3, name: "seed_items" },
            { version: 4, name: "create_tags" }
          ])
          const rows = yield* recorded(set)
          const current = yield* dialect
          expect(rows.map(({ version, name, checksum }) => ({ version, name, checksum }))).toEqual(
            set.migrations.map((known) => ({
              version: known.version,
              name: known.name,
              checksum: Migrations.checksum(known, current)
            }))
          )
          for (const row of rows) {
            expect(row.checksum).toMatch(/^[0-9a-f]{64}$/)
            expect(row.applied_at).toBeGreaterThanOrEqual(before)
            expect(row.applied_at).toBeLessThanOrEqual(after)
          }
          const times = rows.map((row) => row.applied_at)
          expect(times).toEqual([...times].sort((a, b) => a - b))
          expect(yield* countRows("m_order_items")).toBe(1)
          expect(yield* tableExists("m_order_tags")).toBe(true)
        })
    )

    it.effect("re-running applies nothing and changes nothing", () =>
      Effect.gen(function* () {
        const set = setOf("m_rerun", fourSteps("m_rerun"))
        expect(yield* Migrations.run(set)).toHaveLength(4)
        const first = yield* recorded(set)
        expect(yield* Migrations.run(set)).toEqual([])
        expect(yield* Migrations.run(set)).toEqual([])
        expect(yield* recorded(set)).toEqual(first)
        expect(yield* countRows("m_rerun_items")).toBe(1)
      })
    )

    it.effect("runs started together in one process apply each migration exactly once", () =>
      Effect.gen(function* () {
        const set = setOf("m_together", fourSteps("m_together"))
        const runs = yield* Effect.all(
          Array.from({ length: 4 }, () => Migrations.run(set)),
          { concurrency: "unbounded" }
        )
        const applied = runs.flatMap((run) => run.map((step) => step.version)).sort((a, b) => a - b)
        expect(applied).toEqual([1, 2, 3, 4])
        expect(versionsOf(yield* recorded(set))).toEqual([1, 2, 3, 4])
        expect(yield* countRows("m_together_items")).toBe(1)
      })
    )

    it.effect("status asked while migrations run on a fresh set never fails", () =>
      Effect.gen(function* () {
        for (let round = 0; round < 8; round++) {
          const name = `m_busy_status_${round}`
          const set = setOf(name, [
            migration(1, "create", `CREATE TABLE ${name}_things (id INTEGER PRIMARY KEY)`)
          ])
          const [first, applied, second, again, third] = yield* Effect.all(
            [
              Migrations.status(set),
              Migrations.run(set),
              Migrations.status(set),
              Migrations.run(set),
              Migrations.status(set)
            ],
            { concurrency: "unbounded" }
          )
          for (const report of [first, second, third]) {
            expect(report.map((entry) => entry.version)).toEqual([1])
            expect(["pending", "applied"]).toContain(report[0]?.state)
          }
          expect([...applied, ...again].map((step) => step.version)).toEqual([1])
          expect(versionsOf(yield* recorded(set))).toEqual([1])
        }
      })
    )

    it.effect("status reports each migration as applied, pending or modified, and changes nothing", () =>
      Effect.gen(function* () {
        const steps = fourSteps("m_status")
        const full = setOf("m_status", steps)
        const fresh = yield* Migrations.status(full)
        expect(fresh.map(({ version, state, appliedAt }) => ({ version, state, appliedAt }))).toEqual(
          steps.map((step) => ({ version: step.version, state: "pending", appliedAt: Option.none() }))
        )

        yield* Migrations.run(setOf("m_status", steps.slice(0, 2)))
        const rows = yield* recorded(full)
        const partly = yield* Migrations.status(full)
        expect(partly.map(({ version, name, state }) => ({ version, name, state }))).toEqual([
          { version: 1, name: "create_items", state: "applied" },
          { version: 2, name: "add_weight", state: "applied" },
          { version: 3, name: "seed_items", state: "pending" },
          { version: 4, name: "create_tags", state: "pending" }
        ])
        expect(partly.map((entry) => Option.map(entry.appliedAt, (at) => at.getTime()))).toEqual([
          Option.some(rows[0]?.applied_at),
          Option.some(rows[1]?.applied_at),
          Option.none(),
          Option.none()
        ])

        const edited = setOf("m_status", [
          migration(1, "create_items", "CREATE TABLE m_status_items (id INTEGER PRIMARY KEY)"),
          ...steps.slice(1)
        ])
        const states = (yield* Migrations.status(edited)).map((entry) => entry.state)
        expect(states).toEqual(["modified", "applied", "pending", "pending"])
        expect(yield* recorded(full)).toEqual(rows)
        expect(yield* countRows("m_status_items")).toBe(0)
      })
    )

    it.effect("an edited, already-applied migration is a ChecksumMismatch and nothing is applied", () =>
      Effect.gen(function* () {
        const steps = fourSteps("m_edit")
        yield* Migrations.run(setOf("m_edit", steps.slice(0, 2)))
        const rows = yield* recorded(setOf("m_edit", steps))
        const edited = migration(2, "add_weight", "ALTER TABLE m_edit_items ADD COLUMN weight INTEGER")
        const current = yield* dialect
        const error = yield* Migrations.run(
          setOf("m_edit", [steps[0] ?? edited, edited, ...steps.slice(2)])
        ).pipe(Effect.flip)
        expect(error._tag).toBe("ChecksumMismatch")
        if (error._tag !== "ChecksumMismatch") return
        expect(error.set).toBe("m_edit")
        expect(error.version).toBe(2)
        expect(error.name).toBe("add_weight")
        expect(error.recorded).toBe(rows[1]?.checksum)
        expect(error.current).toBe(Migrations.checksum(edited, current))
        expect(error.message).toContain("m_edit 2 (add_weight)")
        expect(yield* recorded(setOf("m_edit", steps))).toEqual(rows)
        expect(yield* countRows("m_edit_items")).toBe(0)
        expect(yield* tableExists("m_edit_tags")).toBe(false)
      })
    )

    it.effect("editing only the other dialect's statements of an applied migration is not a mismatch", () =>
      Effect.gen(function* () {
        const steps = fourSteps("m_other")
        yield* Migrations.run(setOf("m_other", steps.slice(0, 2)))
        const current = yield* dialect
        const first = steps[0]
        if (first === undefined) return
        const otherEdited: Migrations.Migration =
          current === "sqlite"
            ? { ...first, pg: ["CREATE TABLE m_other_items (id BIGINT PRIMARY KEY, label TEXT NOT NULL)"] }
            : { ...first, sqlite: ["CREATE TABLE m_other_items (id INTEGER PRIMARY KEY, label TEXT)"] }
        const applied = yield* Migrations.run(setOf("m_other", [otherEdited, ...steps.slice(1)]))
        expect(applied.map((step) => step.version)).toEqual([3, 4])
      })
    )

    it.effect(
      "a failing migration is a MigrationFailed naming it: earlier ones stay, its partial effects roll back, later ones wait",
      () =>
        Effect.gen(function* () {
          const steps = fourSteps("m_fail")
          const broken = migration(
            3,
            "seed_and_break",
            "INSERT INTO m_fail_items (id, label, weight) VALUES (1, 'partial', 1)",
            "CREATE TABLE m_fail_ok3 (id INTEGER PRIMARY KEY)",
            "THIS IS NOT SQL"
          )
          const [one, two, , four] = steps
          if (one === undefined || two === undefined || four === undefined) return
          const error = yield* Migrations.run(setOf("m_fail", [one, two, broken, four])).pipe(Effect.flip)
          expect(error._tag).toBe("MigrationFailed")
          if (error._tag !== "MigrationFailed") return
          expect(error.set).toBe("m_fail")
          expect(error.version).toBe(3)
          expect(error.name).toBe("seed_and_break")
          expect(error.code).not.toBe("")
          expect(error.message).toContain("m_fail 3 (seed_and_break)")

          expect(versionsOf(yield* recorded(setOf("m_fail", steps)))).toEqual([1, 2])
          expect(yield* tableExists("m_fail_ok3")).toBe(false)
          expect(yield* countRows("m_fail_items")).toBe(0)
          expect(yield* tableExists("m_fail_tags")).toBe(false)
          const states = (yield* Migrations.status(setOf("m_fail", [one, two, broken, four]))).map(
            (entry) => entry.state
          )
          expect(states).toEqual(["applied", "applied", "pending", "pending"])

          const fixed = migration(
            3,
            "seed_and_break",
            "INSERT INTO m_fail_items (id, label, weight) VALUES (1, 'fixed', 1)",
            "CREATE TABLE m_fail_ok3 (id INTEGER PRIMARY KEY)"
          )
          const applied = yield* Migrations.run(setOf("m_fail", [one, two, fixed, four]))
          expect(applied.map((step) => step.version)).toEqual([3, 4])
          expect(versionsOf(yield* recorded(setOf("m_fail", steps)))).toEqual([1, 2, 3, 4])
          expect(yield* tableExists("m_fail_ok3")).toBe(true)
          expect(yield* countRows("m_fail_items")).toBe(1)
          expect(yield* tableExists("m_fail_tags")).toBe(true)
        })
    )

    it.effect("a database that records a migration the code does not know is an UnknownMigration", () =>
      Effect.gen(function* () {
        const steps = fourSteps("m_ahead")
        yield* Migrations.run(setOf("m_ahead", steps.slice(0, 3)))
        const rows = yield* recorded(setOf("m_ahead", steps))
        const error = yield* Migrations.run(setOf("m_ahead", steps.slice(0, 2))).pipe(Effect.flip)
        expect(error._tag).toBe("UnknownMigration")
        if (error._tag !== "UnknownMigration") return
        expect(error.set).toBe("m_ahead")
        expect(error.version).toBe(3)
        expect(error.name).toBe("seed_items")

        const skipping = yield* Migrations.run(
          setOf("m_ahead", [...steps.slice(0, 2), ...steps.slice(3)])
        ).pipe(Effect.flip)
        expect(skipping._tag).toBe("UnknownMigration")
        expect(yield* recorded(setOf("m_ahead", steps))).toEqual(rows)
        expect(yield* tableExists("m_ahead_tags")).toBe(false)
      })
    )

    it.effect("a malformed migration set is an InvalidMigrations and touches no table", () =>
      Effect.gen(function* () {
        const probe = (table: string) => `CREATE TABLE ${table} (id INTEGER PRIMARY KEY)`
        const malformed: ReadonlyArray<readonly [Migrations.MigrationSet, string]> = [
          [
            setOf("m_bad_order", [migration(2, "b", probe("m_bad_order_a")), migration(1, "a", probe("z"))]),
            "m_bad_order_a"
          ],
          [
            setOf("m_bad_dup", [migration(1, "a", probe("m_bad_dup_a")), migration(1, "b", probe("z"))]),
            "m_bad_dup_a"
          ],
          [setOf("m_bad_zero", [migration(0, "zero", probe("m_bad_zero_a"))]), "m_bad_zero_a"],
          [
            setOf("m_bad_negative", [migration(-1, "negative", probe("m_bad_negative_a"))]),
            "m_bad_negative_a"
          ],
          [
            setOf("m_bad_fraction", [migration(1.5, "fraction", probe("m_bad_fraction_a"))]),
            "m_bad_fraction_a"
          ],
          [
            setOf("m_bad_nosqlite", [{ version: 1, name: "a", sqlite: [], pg: [probe("m_bad_nosqlite_a")] }]),
            "m_bad_nosqlite_a"
          ],
          [
            setOf("m_bad_nopg", [{ version: 1, name: "a", sqlite: [probe("m_bad_nopg_a")], pg: [] }]),
            "m_bad_nopg_a"
          ],
          [setOf("Bad-Name", [migration(1, "a", probe("m_bad_name_a"))]), "m_bad_name_a"],
          [setOf("", [migration(1, "a", probe("m_bad_blank_a"))]), "m_bad_blank_a"],
          [
            setOf("x; DROP TABLE m_order_items", [migration(1, "a", probe("m_bad_inject_a"))]),
            "m_bad_inject_a"
          ],
          [setOf("9digit_first", [migration(1, "a", probe("m_bad_digit_a"))]), "m_bad_digit_a"]
        ]
        for (const [set, probeTable] of malformed) {
          const ran = yield* Migrations.run(set).pipe(Effect.flip)
          expect(ran._tag, set.name).toBe("InvalidMigrations")
          if (ran._tag === "InvalidMigrations") expect(ran.set).toBe(set.name)
          const status = yield* Migrations.status(set).pipe(Effect.flip)
          expect(status._tag, set.name).toBe("InvalidMigrations")
          expect(yield* tableExists(probeTable), set.name).toBe(false)
          if (/^[a-z_]+$/.test(set.name)) {
            expect(yield* tableExists(Migrations.tableName(set)), set.name).toBe(false)
          }
        }
      })
    )

    it.effect("an empty set is valid: it applies nothing", () =>
      Effect.gen(function* () {
        const set = setOf("m_empty", [])
        expect(yield* Migrations.run(set)).toEqual([])
        expect(yield* Migrations.status(set)).toEqual([])
      })
    )

    it.effect("two sets with different names are tracked independently", () =>
      Effect.gen(function* () {
        const alpha = setOf("m_alpha", [
          migration(1, "create", "CREATE TABLE m_alpha_things (id INTEGER PRIMARY KEY)")
        ])
        const beta = setOf("m_beta", [
          migration(1, "create", "CREATE TABLE m_beta_things (id INTEGER PRIMARY KEY)"),
          migration(2, "seed", "INSERT INTO m_beta_things (id) VALUES (1)")
        ])
        expect((yield* Migrations.run(alpha)).map((step) => step.version)).toEqual([1])
        expect((yield* Migrations.run(beta)).map((step) => step.version)).toEqual([1, 2])
        expect(Migrations.tableName(alpha)).not.toBe(Migrations.tableName(beta))
        expect(versionsOf(yield* recorded(alpha))).toEqual([1])
        expect(versionsOf(yield* recorded(beta))).toEqual([1, 2])

        const alphaNext = setOf("m_alpha", [
          ...alpha.migrations,
          migration(2, "seed", "INSERT INTO m_alpha_things (id) VALUES (1)")
        ])
        expect((yield* Migrations.run(alphaNext)).map((step) => step.version)).toEqual([2])
        expect(yield* Migrations.run(beta)).toEqual([])

        const betaEdited = setOf("m_beta", [
          migration(1, "create", "CREATE TABLE m_beta_things (id INTEGER PRIMARY KEY, extra TEXT)"),
          ...beta.migrations.slice(1)
        ])
        expect((yield* Migrations.run(betaEdited).pipe(Effect.flip))._tag).toBe("ChecksumMismatch")
        expect(yield* Migrations.run(alphaNext)).toEqual([])
        expect((yield* Migrations.status(alphaNext)).map((entry) => entry.state)).toEqual([
          "applied",
          "applied"
        ])
        expect(versionsOf(yield* recorded(alpha))).toEqual([1, 2])
        expect(versionsOf(yield* recorded(beta))).toEqual([1, 2])
      })
    )
  })
})

describe("Migrations.checksumTable (what a bundle precomputes as KEEL_MIGRATION_CHECKSUMS)", () => {
  it("lists every migration's statement text in both dialects with the checksum checksum gives it", () => {
    const set = setOf("m_table", fourSteps("m_table"))
    const table = Migrations.checksumTable(set)
    expect(table).toEqual(
      set.migrations.flatMap((migration) =>
        (["sqlite", "pg"] as const).map((dialect) => [
          JSON.stringify(migration[dialect]),
          Migrations.checksum(migration, dialect)
        ])
      )
    )
    for (const [, checksum] of table) expect(checksum).toMatch(/^[0-9a-f]{64}$/)
  })
})
