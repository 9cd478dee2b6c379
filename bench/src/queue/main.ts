/**
 * `bench/queue`: Keel's queue side by side with the queues users would pick instead, on the same
 * workload (see `workload.ts`): enqueue N small JSON jobs one by one and 100 at a time, and drain
 * them with a do-nothing handler at concurrency 1 and 8.
 *
 * - SQLite: Keel vs plainjob and liteque, and `raw` (better-sqlite3 doing Keel's statements by hand).
 * - Turso (the Rust SQLite rewrite, `turso:` DSN): Keel alone, fewer jobs; compare with Keel on SQLite.
 * - PostgreSQL: Keel vs pg-boss and graphile-worker, and `raw` (node-postgres, fewest round trips).
 * - Redis: BullMQ, the in-memory reference, compared with Keel on PostgreSQL.
 *
 * Each system runs in a child process of its own (its own peak RSS) on a database of its own: a
 * SQLite file, a fresh PostgreSQL database created and dropped around it, a unique Redis prefix.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import * as Queue from "@keel/queue/Queue"
import * as Database from "@keel/sql/Database"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Child from "../Child.js"
import * as Postgres from "../Postgres.js"
import * as Report from "../Report.js"
import * as SqliteFile from "../SqliteFile.js"
import { type Job, queueName } from "./workload.js"

const here = dirname(fileURLToPath(import.meta.url))
const root = mkdtempSync(join(tmpdir(), "keel-bench-queue-"))
const sizes = Report.quick
  ? { sqlite: 200, postgres: 100, redis: 200, turso: 100 }
  : { sqlite: 3000, postgres: 1000, redis: 3000, turso: 500 }
/**
 * Untimed jobs per phase before the timed ones: as many as are timed. A few hundred are not enough
 * for V8 to optimize the hot paths of a library as layered as Effect (Keel's SQLite send: ~200 µs
 * after 500 warm-up calls, ~130 µs after 3,000), and every system gets the same warm-up.
 */
const warmupOf = (jobs: number) => (Report.quick ? 20 : jobs)

type BackendName = "sqlite" | "postgres" | "redis" | "turso"

interface Entry {
  readonly script: string
  readonly system: string
  readonly backend: BackendName
  readonly versus?: string
  readonly note?: string
  /** The child works on Keel's tables: migrate them and create the queue first. */
  readonly keelSchema?: boolean
}

const entries: ReadonlyArray<Entry> = [
  { script: "keel.ts", system: "keel", backend: "sqlite" },
  {
    script: "raw-sqlite.ts",
    system: "raw",
    backend: "sqlite",
    keelSchema: true,
    note: "better-sqlite3, Keel's statements by hand"
  },
  { script: "plainjob.ts", system: "plainjob", backend: "sqlite", note: "concurrency N = N workers" },
  { script: "liteque.ts", system: "liteque", backend: "sqlite" },
  {
    script: "keel.ts",
    system: "keel",
    backend: "turso",
    note: "the Turso engine (@tursodatabase/database), one connection per process; fewer jobs (a statement costs ~10× SQLite's)"
  },
  { script: "keel.ts", system: "keel", backend: "postgres" },
  {
    script: "raw-postgres.ts",
    system: "raw",
    backend: "postgres",
    keelSchema: true,
    note: "node-postgres, one round trip to lease, one to archive"
  },
  {
    script: "pgboss.ts",
    system: "pg-boss",
    backend: "postgres",
    note: "work() with batchSize 100, polling 0.5 s; concurrency N = N work()"
  },
  { script: "graphile.ts", system: "graphile-worker", backend: "postgres" },
  { script: "bullmq.ts", system: "bullmq", backend: "redis", versus: "postgres" }
]

/** Migrates Keel's queue tables at `dsn` and creates the benchmark queue, for the raw clients. */
const keelSchema = async (dsn: string) => {
  const runtime = ManagedRuntime.make(Queue.layer().pipe(Layer.provide(Database.layer(dsn))))
  try {
    await runtime.runPromise(Effect.flatMap(Queue.Queues, (queues) => queues.ensureQueue(queueName)))
  } finally {
    await runtime.dispose()
  }
}

/** The target of one entry and how to remove it afterwards. */
const prepare = async (
  entry: Entry,
  slug: string
): Promise<{ readonly target: string; readonly dsn: string; readonly drop: () => Promise<void> }> => {
  if (entry.backend === "sqlite") {
    const file = join(root, `${slug}.db`)
    return {
      target: entry.system === "keel" ? `sqlite:${file}` : file,
      dsn: `sqlite:${file}`,
      drop: async () => SqliteFile.remove(file)
    }
  }
  if (entry.backend === "turso") {
    const file = join(root, `${slug}.db`)
    return { target: `turso:${file}`, dsn: `turso:${file}`, drop: async () => {} }
  }
  if (entry.backend === "redis") {
    return { target: `keel-bench-${process.pid}-${slug}`, dsn: "", drop: async () => {} }
  }
  const database = await Postgres.fresh(`keel_bench_queue_${slug.replace(/[^a-z0-9]/g, "_")}_${process.pid}`)
  return { target: database.url, dsn: database.url, drop: database.drop }
}

/**
 * Rounds of the SQLite and Redis entries (`Report.rounds`: `--rounds=N`, default 3), run interleaved —
 * round 1 of every such entry, then round 2, … — and reported as the median row per workload.
 * Their ratios compare rows of different child processes a few seconds apart, on a machine whose
 * speed moves by ±25% within minutes: one round each lets the drift between two children decide a
 * ratio, interleaved rounds let it fall on every system alike. PostgreSQL and Turso entries run
 * once (their targets are not near their thresholds, and a round costs minutes there).
 */
const interleaved = (entry: Entry) => entry.backend === "sqlite" || entry.backend === "redis"

/** A row that says an entry failed (`workload` "all"). */
const failedRow = (entry: Entry, message: string): Report.Row => ({
  system: entry.system,
  backend: entry.backend,
  workload: "all",
  operations: 0,
  seconds: 0,
  opsPerSecond: Number.NaN,
  peakRssMiB: Number.NaN,
  note: `failed: ${message}`
})

let keelFailed = false

/** One run of `entry` in a child of its own, on a database of its own (`round` names it). */
const runEntry = async (entry: Entry, round: number): Promise<ReadonlyArray<Report.Row>> => {
  const slug = `${entry.system}-${entry.backend}-r${round}`.replace(/[^a-z0-9-]/gi, "-")
  const started = performance.now()
  const { target, dsn, drop } = await prepare(entry, slug)
  const jobs = sizes[entry.backend]
  try {
    if (entry.keelSchema) await keelSchema(dsn)
    const job: Job = {
      system: entry.system,
      backend: entry.backend,
      versus: entry.versus,
      note: entry.note,
      target,
      jobs,
      warmup: warmupOf(jobs),
      concurrency: [1, 8]
    }
    return (await Child.runJson(join(here, "systems", entry.script), [
      JSON.stringify(job)
    ])) as ReadonlyArray<Report.Row>
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    console.error(`queue: ${entry.system} on ${entry.backend} failed: ${message}`)
    if (entry.system === "keel") keelFailed = true
    return [failedRow(entry, message)]
  } finally {
    await drop()
    const which = interleaved(entry) ? Report.ofRound(round) : ""
    console.error(
      `queue: ${entry.system} on ${entry.backend}, ${jobs} jobs${which}: ${((performance.now() - started) / 1000).toFixed(1)} s`
    )
  }
}

try {
  const chosen = entries.filter((e) => Report.selected(e.system, e.backend))
  const results = new Map<Entry, Array<ReadonlyArray<Report.Row>>>(chosen.map((entry) => [entry, []]))
  for (let round = 0; round < Report.rounds; round++)
    for (const entry of chosen.filter(interleaved)) results.get(entry)?.push(await runEntry(entry, round))
  for (const entry of chosen.filter((e) => !interleaved(e)))
    results.get(entry)?.push(await runEntry(entry, 0))
  const rows = chosen.flatMap((entry) => Report.medianOfRounds(results.get(entry) ?? []))
  Report.report("queue", rows, Report.roundsRemarks("SQLite and Redis rows"))
} finally {
  rmSync(root, { recursive: true, force: true })
}
if (keelFailed) process.exit(1)
