/**
 * `bench/cursor`: Keel's cursor store next to the raw driver, on SQLite and PostgreSQL (see
 * `workload.ts`), and Keel alone on the Turso engine (`turso:`, fewer flush rounds: a statement
 * there costs ~10× SQLite's). Each system runs in a child process of its own, on the same database: the
 * coordinator migrates Keel's cursor table first, and the raw writer uses other peers' rows.
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

const rows: Array<Report.Row> = []
try {
  for (const backend of ["sqlite", "postgres", "turso"] as const) {
    if (!Report.selected("keel", backend) && !Report.selected("raw", backend)) continue
    const database =
      backend === "postgres" ? await Postgres.fresh(`keel_bench_cursor_${process.pid}`) : undefined
    const dsn = database?.url ?? `${backend}:${join(root, `bench-${backend}.db`)}`
    try {
      await migrate(dsn)
      const systems = backend === "turso" ? (["keel"] as const) : (["keel", "raw"] as const)
      for (const system of systems.filter((name) => Report.selected(name, backend))) {
        const started = performance.now()
        const sizes =
          backend === "turso"
            ? flushSizes.map(([size, rounds]) => [size, Math.max(2, Math.ceil(rounds / 10))] as const)
            : flushSizes
        const job: Job = { backend, dsn, setOps, flushSizes: sizes }
        const result = (await Child.runJson(join(here, `${system}.ts`), [
          JSON.stringify(job)
        ])) as ReadonlyArray<Report.Row>
        rows.push(...result)
        process.stderr.write(
          `cursor: ${system} on ${backend}: ${((performance.now() - started) / 1000).toFixed(1)} s\n`
        )
      }
    } finally {
      await database?.drop()
    }
  }
  Report.report("cursor", rows)
} finally {
  rmSync(root, { recursive: true, force: true })
}
