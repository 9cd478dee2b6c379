/**
 * Benchmark measurement and reporting: every suite measures with these helpers, prints one table
 * (system, backend, workload, ops/s, p50, p99, peak RSS, ratio to Keel) and writes
 * `bench/results/<suite>.json`. Numbers are never assertions.
 */
import { mkdirSync, writeFileSync } from "node:fs"
import { availableParallelism } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

/** One measured (system, backend, workload). */
export interface Row {
  readonly system: string
  readonly backend: string
  readonly workload: string
  /** Operations completed. */
  readonly operations: number
  readonly seconds: number
  readonly opsPerSecond: number
  /** Per-operation latency percentiles in milliseconds, when measured per operation. */
  readonly p50Ms?: number | undefined
  readonly p99Ms?: number | undefined
  /** Peak resident set size of the measuring process, in MiB. */
  readonly peakRssMiB: number
  /** This row's ops/s divided by Keel's ops/s on the same workload and backend (or `versus`); 1 for Keel. */
  readonly ratioToKeel?: number | undefined
  /**
   * The backend of the Keel row this row is compared with, when Keel does not run on the row's own
   * backend (BullMQ on Redis is compared with Keel on PostgreSQL). Default: the row's backend.
   */
  readonly versus?: string | undefined
  readonly note?: string | undefined
  /** Every round's ops/s, when the row is the median of several rounds (in the JSON only). */
  readonly rounds?: ReadonlyArray<number> | undefined
}

/** True when `--quick` was passed (or BENCH_QUICK=1): suites shrink their sizes. */
export const quick: boolean = process.argv.includes("--quick") || process.env.BENCH_QUICK === "1"

/**
 * `--only=system@backend,…` (e.g. `--only=keel@sqlite,raw@sqlite`): run only those entries of a
 * suite. The table is printed and written to `results/<suite>.only.json`, leaving the full results
 * alone. Undefined when every entry runs.
 */
export const only: ReadonlySet<string> | undefined = (() => {
  const flag = process.argv.find((arg) => arg.startsWith("--only="))
  return flag === undefined
    ? undefined
    : new Set(
        flag
          .slice("--only=".length)
          .split(",")
          .filter((x) => x !== "")
      )
})()

/** True when `only` selects the entry of `system` on `backend` (always, without `--only`). */
export const selected = (system: string, backend: string): boolean =>
  only === undefined || only.has(`${system}@${backend}`)

/**
 * `--rounds=N`: how many interleaved rounds a suite runs of the rows it compares across child
 * processes (default 3; `--quick`: 1). See the queue and cursor suites.
 */
export const rounds: number = Math.max(
  1,
  Number(
    process.argv.find((arg) => arg.startsWith("--rounds="))?.slice("--rounds=".length) ?? (quick ? 1 : 3)
  )
)

/** `, round 2 of 3` for a progress line when a suite runs several rounds; nothing otherwise. */
export const ofRound = (round: number): string => (rounds > 1 ? `, round ${round + 1} of ${rounds}` : "")

/**
 * What the table says of `which` rows when a suite runs several rounds of them (none otherwise):
 * the median of interleaved rounds, each on a fresh database.
 */
export const roundsRemarks = (which: string): ReadonlyArray<string> =>
  rounds > 1
    ? [
        `${which}: the median of ${rounds} interleaved rounds, each on a fresh database (each round's ops/s in the JSON's \`rounds\`; peak RSS: the largest of the rounds); PostgreSQL and Turso: one round`
      ]
    : []

/**
 * The rows of several rounds of one entry as one row per workload: the round with the median
 * ops/s (its latencies with it), the largest peak RSS of all rounds, and every round's ops/s in
 * `rounds`. A failure in any round (a row whose workload is `all`) is the result.
 */
export const medianOfRounds = (results: ReadonlyArray<ReadonlyArray<Row>>): ReadonlyArray<Row> => {
  const [first] = results
  if (results.length <= 1 || first === undefined) return first ?? []
  const failed = results.find((rows) => rows.some((row) => row.workload === "all"))
  if (failed !== undefined) return failed
  return first.map((row) => {
    const same = results.flatMap((rows) => rows.filter((r) => r.workload === row.workload))
    const ranked = same
      .filter((r) => Number.isFinite(r.opsPerSecond))
      .sort((a, b) => a.opsPerSecond - b.opsPerSecond)
    const median = ranked[Math.floor((ranked.length - 1) / 2)] ?? row
    return {
      ...median,
      peakRssMiB: Math.max(...same.map((r) => r.peakRssMiB)),
      rounds: same.map((r) => Math.round(r.opsPerSecond))
    }
  })
}

/** Peak RSS of this process so far, in MiB. */
export const peakRssMiB = (): number => Math.round((process.resourceUsage().maxRSS / 1024) * 10) / 10

/** The p-th percentile (0–100) of `samples` (milliseconds), nearest-rank. */
export const percentile = (samples: ReadonlyArray<number>, p: number): number => {
  if (samples.length === 0) return Number.NaN
  const sorted = [...samples].sort((a, b) => a - b)
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return Math.round((sorted[rank] ?? Number.NaN) * 1000) / 1000
}

/** What names a row: its system, backend and workload, and an optional note. */
export type Label = Pick<Row, "system" | "backend" | "workload" | "note">

/** Times `operations` done by `run` (which does them all); returns a row without latencies. */
export const throughput = async (
  label: Label,
  operations: number,
  run: () => Promise<unknown>
): Promise<Row> => {
  const started = performance.now()
  await run()
  const seconds = (performance.now() - started) / 1000
  return { ...label, operations, seconds, opsPerSecond: operations / seconds, peakRssMiB: peakRssMiB() }
}

/** Runs `once` sequentially `operations` times, timing each; returns a row with p50/p99. */
export const latency = async (
  label: Label,
  operations: number,
  once: (index: number) => Promise<unknown>
): Promise<Row> => {
  const samples: Array<number> = []
  const started = performance.now()
  for (let index = 0; index < operations; index++) {
    const t0 = performance.now()
    await once(index)
    samples.push(performance.now() - t0)
  }
  const seconds = (performance.now() - started) / 1000
  return {
    ...label,
    operations,
    seconds,
    opsPerSecond: operations / seconds,
    p50Ms: percentile(samples, 50),
    p99Ms: percentile(samples, 99),
    peakRssMiB: peakRssMiB()
  }
}

/**
 * Fills `ratioToKeel` for every row from the Keel row of the same workload on the same backend (or
 * on `versus`). Rows without such a Keel row, or without a rate, get none.
 */
export const withRatios = (rows: ReadonlyArray<Row>, keelSystem = "keel"): ReadonlyArray<Row> =>
  rows.map((row) => {
    const backend = row.versus ?? row.backend
    const keel = rows.find(
      (r) => r.system === keelSystem && r.backend === backend && r.workload === row.workload
    )
    return keel === undefined || !Number.isFinite(row.opsPerSecond) || !(keel.opsPerSecond > 0)
      ? row
      : { ...row, ratioToKeel: Math.round((row.opsPerSecond / keel.opsPerSecond) * 100) / 100 }
  })

const format = (value: number | undefined, digits = 1): string =>
  // A rate that was not measured is NaN here and null once a row has been through JSON.
  typeof value !== "number" || !Number.isFinite(value) ? "-" : value.toFixed(digits)

/**
 * Prints the table and writes `bench/results/<suite>.json`; `remarks` (how the rows were measured)
 * are printed under the title and kept in the JSON.
 */
export const report = (
  suite: string,
  rows: ReadonlyArray<Row>,
  remarks: ReadonlyArray<string> = []
): void => {
  const finished = withRatios(rows)
  const header = [
    "system",
    "backend",
    "workload",
    "ops/s",
    "p50 ms",
    "p99 ms",
    "peak RSS MiB",
    "ratio to keel"
  ]
  const lines = finished.map((row) => [
    row.system,
    row.backend,
    row.workload,
    format(row.opsPerSecond, 0),
    format(row.p50Ms, 3),
    format(row.p99Ms, 3),
    format(row.peakRssMiB, 1),
    row.versus === undefined || row.ratioToKeel === undefined
      ? format(row.ratioToKeel, 2)
      : `${format(row.ratioToKeel, 2)} (vs ${row.versus})`
  ])
  const widths = header.map((title, column) =>
    Math.max(title.length, ...lines.map((line) => (line[column] ?? "").length))
  )
  const render = (cells: ReadonlyArray<string>) =>
    cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join("  ")
  console.log(`\n## ${suite}${quick ? " (quick)" : ""}\n`)
  for (const remark of remarks) console.log(`${remark}\n`)
  console.log(render(header))
  console.log(render(widths.map((width) => "-".repeat(width))))
  for (const line of lines) console.log(render(line))
  // A note every row of a (system, backend) shares is printed once, without the workload.
  const printed = new Set<string>()
  for (const row of finished) {
    if (!row.note) continue
    const shared = finished
      .filter((r) => r.system === row.system && r.backend === row.backend)
      .every((r) => r.note === row.note)
    const line = `  note: ${row.system}/${row.backend}${shared ? "" : `/${row.workload}`}: ${row.note}`
    if (!printed.has(line)) console.log(line)
    printed.add(line)
  }
  const file = join(
    dirname(fileURLToPath(import.meta.url)),
    "..",
    "results",
    `${suite}${only === undefined ? "" : ".only"}.json`
  )
  mkdirSync(dirname(file), { recursive: true })
  writeFileSync(
    file,
    `${JSON.stringify({ suite, quick, node: process.version, cpus: availableParallelism(), at: new Date().toISOString(), remarks, rows: finished }, null, 2)}\n`
  )
  console.log(`\nwrote ${file}`)
}
