/**
 * `bench/cursor`: Keel's cursor store next to the raw driver, on SQLite and PostgreSQL (see
 * `workload.ts`), and Keel alone on the Turso engine (`turso:`, fewer flush rounds: a statement
 * there costs ~10× SQLite's). Each system runs in a child process of its own, on the same database: the
 * coordinator migrates Keel's cursor table first, and the raw writer uses other peers' rows. On
 * SQLite, `Report.rounds` interleaved rounds (see `runSystem`).
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import * as Cursor from "@keel/cursor/Cursor"
import * as Database from "@keel/sql/Database"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Child from "../Child.js"
import * as Postgres from "../Postgres.js"
import * as Report from "../Report.js"
import * as SqliteFile from "../SqliteFile.js"
import { type Job, namespace } from "./workload.js"

const here = dirname(fileURLToPath(import.meta.url))
const root = mkdtempSync(join(tmpdir(), "keel-bench-cursor-"))
const setOps = Report.quick ? 50_000 : 500_000
const flushSizes: ReadonlyArray<readonly [size: number, rounds: number]> = Report.quick
  ? [
      [1, 20],
      [100, 10],
      [10_000, 2]
    ]
  : [
      [1, 3_000],
      [100, 300],
      [10_000, 15]
    ]

/** Migrates Keel's cursor table at `dsn` (the raw writer needs it). */
const migrate = async (dsn: string) => {
  const runtime = ManagedRuntime.make(
    Cursor.layer({ namespace, flushInterval: Duration.hours(1) }).pipe(Layer.provide(Database.layer(dsn)))
  )
  try {
    await runtime.runPromise(Effect.asVoid(Cursor.Cursors))
  } finally {
    await runtime.dispose()
  }
}

/**
 * One child of `system` on `dsn`; its rows. SQLite runs `Report.rounds` interleaved rounds (Keel
 * then raw, each round on a fresh database) and reports the median of each row: the flush of one is
 * ~10–50 µs, and the machine's drift between the two children would otherwise decide its ratio.
 */
const runSystem = async (system: "keel" | "raw", backend: Job["backend"], dsn: string, which: string) => {
  const started = performance.now()
  const sizes =
    backend === "turso"
      ? flushSizes.map(([size, rounds]) => [size, Math.max(2, Math.ceil(rounds / 10))] as const)
      : flushSizes
  const job: Job = { backend, dsn, setOps, flushSizes: sizes }
  const result = (await Child.runJson(join(here, `${system}.ts`), [
    JSON.stringify(job)
  ])) as ReadonlyArray<Report.Row>
  process.stderr.write(
    `cursor: ${system} on ${backend}${which}: ${((performance.now() - started) / 1000).toFixed(1)} s\n`
  )
  return result
}

const rows: Array<Report.Row> = []
try {
  for (const backend of ["sqlite", "postgres", "turso"] as const) {
    if (!Report.selected("keel", backend) && !Report.selected("raw", backend)) continue
    const systems = (backend === "turso" ? (["keel"] as const) : (["keel", "raw"] as const)).filter((name) =>
      Report.selected(name, backend)
    )
    const rounds = backend === "sqlite" ? Report.rounds : 1
    const results = new Map(systems.map((system) => [system, [] as Array<ReadonlyArray<Report.Row>>]))
    for (let round = 0; round < rounds; round++) {
      const database =
        backend === "postgres" ? await Postgres.fresh(`keel_bench_cursor_${process.pid}`) : undefined
      const file = join(root, `bench-${backend}-r${round}.db`)
      const dsn = database?.url ?? `${backend}:${file}`
      const which = backend === "sqlite" ? Report.ofRound(round) : ""
      try {
        await migrate(dsn)
        for (const system of systems) results.get(system)?.push(await runSystem(system, backend, dsn, which))
      } finally {
        await database?.drop()
        SqliteFile.remove(file)
      }
    }
    for (const system of systems) rows.push(...Report.medianOfRounds(results.get(system) ?? []))
  }
  Report.report("cursor", rows, Report.roundsRemarks("SQLite rows"))
} finally {
  rmSync(root, { recursive: true, force: true })
}
