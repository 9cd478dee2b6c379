/**
 * `bench/reservation`: reserve+release through Keel's registry next to the same statements done
 * by hand with the raw driver, on SQLite and PostgreSQL —
 * - `1 process`: one process does its operations in a loop; ops/s and p50/p99 per operation;
 * - `10 processes`: ten processes do theirs at once, all starting at the same instant; ops/s over
 *   the whole run and p50/p99 over every operation of every process;
 * - `cold process`: a fresh `keel port reserve` process (the CLI bundle) against an existing SQLite
 *   database — the reservation present (refreshed) and absent (created) — next to `node -e 0`,
 *   and `keel --help` and a usage error, which must start as fast.
 *
 * One operation = reserve a port for a key (one allocation transaction) + release it (another).
 * The range holds 500 reservations of other keys so that the allocator reads a realistic table.
 * Keel runs with occupancy probing off (the raw statements probe nothing); `keel+occupancy` shows
 * what the TCP probe adds. Every measured system runs in processes of its own; peak RSS is the
 * largest of its processes.
 */
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import * as Turso from "@tursodatabase/database"
import Sqlite from "better-sqlite3"
import pg from "pg"
import * as Child from "../Child.js"
import * as Postgres from "../Postgres.js"
import * as Report from "../Report.js"
import { keel } from "./keel.js"
import type { Job, Result } from "./worker.js"
import { prefillRows } from "./workload.js"

const here = dirname(fileURLToPath(import.meta.url))
const workers = { keel: join(here, "worker-keel.ts"), raw: join(here, "worker-raw.ts") }
const cli = join(here, "..", "..", "..", "apps", "cli")
const sizes = Report.quick
  ? { warmup: 5, single: 50, concurrent: 10, cold: 3 }
  : { warmup: 100, single: 1000, concurrent: 100, cold: 20 }
const processes = 10
const prefill = 500

const root = mkdtempSync(join(tmpdir(), "keel-bench-reservation-"))

interface Backend {
  readonly name: "sqlite" | "postgres" | "turso"
  readonly dsn: string
  readonly fill: () => Promise<void>
  readonly drop: () => Promise<void>
}

const sqliteBackend = (): Backend => {
  const file = join(root, "bench.db")
  return {
    name: "sqlite",
    dsn: `sqlite:${file}`,
    fill: async () => {
      const db = new Sqlite(file)
      const insert = db.prepare(
        "INSERT INTO keel_reservations (path, tag, port, created_at, last_used_at) VALUES (?, ?, ?, ?, ?)"
      )
      db.transaction(() => {
        for (const row of prefillRows(prefill))
          insert.run(row.path, row.tag, row.port, Date.now(), Date.now())
      })()
      db.close()
    },
    drop: async () => undefined
  }
}

/** The Turso engine (`turso:`): one process at a time, so Keel alone and one process only. */
const tursoBackend = (): Backend => {
  const file = join(root, "bench-turso.db")
  return {
    name: "turso",
    dsn: `turso:${file}`,
    fill: async () => {
      const db = await Turso.connect(file)
      const insert = await db.prepare(
        "INSERT INTO keel_reservations (path, tag, port, created_at, last_used_at) VALUES (?, ?, ?, ?, ?)"
      )
      for (const row of prefillRows(prefill))
        await insert.run(row.path, row.tag, row.port, Date.now(), Date.now())
      await db.close()
    },
    drop: async () => undefined
  }
}

const postgresBackend = async (): Promise<Backend> => {
  const database = await Postgres.fresh(`keel_bench_reservation_${process.pid}`)
  const dsn = database.url
  return {
    name: "postgres",
    dsn,
    fill: async () => {
      const client = new pg.Client({ connectionString: dsn })
      await client.connect()
      for (const row of prefillRows(prefill)) {
        await client.query(
          "INSERT INTO keel_reservations (path, tag, port, created_at, last_used_at) VALUES ($1, $2, $3, $4, $5)",
          [row.path, row.tag, row.port, Date.now(), Date.now()]
        )
      }
      await client.end()
    },
    drop: database.drop
  }
}

/**
 * Runs `count` worker processes of one system that start together; merges their samples. Each
 * process reserves under a directory of its own (its own key).
 */
const run = async (
  label: string,
  backend: Backend,
  count: number,
  job: Omit<Job, "directory" | "dsn" | "warmup" | "ops">,
  note?: string
): Promise<Report.Row> => {
  const ops = count === 1 ? sizes.single : sizes.concurrent
  const started = performance.now()
  const children = await Promise.all(
    Array.from({ length: count }, async (_, index) => {
      const directory = join(root, `${label}-${backend.name}-${count}-${index}`.replace(/[^a-z0-9-]/gi, "-"))
      mkdirSync(directory, { recursive: true })
      const full: Job = { ...job, dsn: backend.dsn, directory, warmup: sizes.warmup, ops }
      return Child.start(workers[job.system], [JSON.stringify(full)])
    })
  )
  await Promise.all(children.map((child) => child.printed("ready")))
  for (const child of children) child.child.stdin?.end("go\n")
  const results = await Promise.all(
    children.map(async (worker) => {
      const line = (await worker.done).split("\n").find((text) => text.startsWith("{"))
      if (line === undefined) throw new Error(`a ${label} worker printed no result`)
      return JSON.parse(line) as Result
    })
  )
  process.stderr.write(
    `reservation: ${label} on ${backend.name}, ${count} × ${ops} ops: ${((performance.now() - started) / 1000).toFixed(1)} s\n`
  )
  const samples = results.flatMap((result) => result.samples)
  const seconds = (Math.max(...results.map((r) => r.end)) - Math.min(...results.map((r) => r.start))) / 1000
  return {
    system: label,
    backend: backend.name,
    workload: `reserve+release, ${count} process${count === 1 ? "" : "es"}`,
    operations: samples.length,
    seconds,
    opsPerSecond: samples.length / seconds,
    p50Ms: Report.percentile(samples, 50),
    p99Ms: Report.percentile(samples, 99),
    peakRssMiB: Math.max(...results.map((result) => result.peakRssMiB)),
    ...(note === undefined ? {} : { note })
  }
}

/** The CLI bundle, built when missing; undefined (with the reason) when it cannot be had. */
const cliBundle = (): { readonly bin: string } | { readonly missing: string } => {
  const bin = join(cli, "bin", "keel.cjs")
  if (!existsSync(bin)) return { missing: "apps/cli/bin/keel.cjs does not exist" }
  if (!existsSync(join(cli, "dist", "keel.cjs"))) {
    const built = spawnSync(process.execPath, [join(cli, "scripts", "build.mjs")], {
      cwd: cli,
      encoding: "utf8"
    })
    if (built.status !== 0)
      return { missing: `building the CLI failed: ${built.stderr.trim().slice(0, 200)}` }
  }
  return { bin }
}

/**
 * Cold processes, interleaved one of each per round so that load from elsewhere falls on all
 * alike. Peak RSS comes from `/usr/bin/time -f %M` when it exists.
 */
const coldStarts = async (): Promise<ReadonlyArray<Report.Row>> => {
  const bundle = cliBundle()
  const pending = (system: string, note: string): Report.Row => ({
    system,
    backend: "sqlite",
    workload: "cold process",
    operations: 0,
    seconds: 0,
    opsPerSecond: Number.NaN,
    peakRssMiB: Number.NaN,
    note
  })
  if ("missing" in bundle) return [pending("keel port reserve", `pending: ${bundle.missing}`)]
  const dir = join(root, "cold")
  mkdirSync(dir, { recursive: true })
  const env = { ...process.env, KEEL_DB: `sqlite:${join(dir, "keel.db")}` }
  const timeBin = existsSync("/usr/bin/time") ? "/usr/bin/time" : undefined
  const rssFile = join(dir, "rss")
  const once = (args: ReadonlyArray<string>, expectedStatus = 0) => {
    const command =
      timeBin === undefined
        ? [process.execPath, ...args]
        : [timeBin, "-f", "%M", "-o", rssFile, process.execPath, ...args]
    const started = performance.now()
    const result = spawnSync(command[0] ?? process.execPath, command.slice(1), {
      cwd: dir,
      env,
      encoding: "utf8"
    })
    const ms = performance.now() - started
    if (result.status !== expectedStatus)
      throw new Error(`${args.join(" ")} exited ${result.status}: ${result.stderr.trim()}`)
    // GNU time puts "Command exited with non-zero status N" before the figure.
    const rss =
      timeBin === undefined
        ? Number.NaN
        : Number(readFileSync(rssFile, "utf8").trim().split("\n").at(-1)) / 1024
    return { ms, rss }
  }
  // Each: name, note, arguments, expected exit status.
  const commands: ReadonlyArray<
    readonly [string, string, (round: number) => ReadonlyArray<string>, number?]
  > = [
    ["node -e 0", "the floor: Node starting and exiting", () => ["-e", "0"]],
    [
      "keel port reserve",
      "reservation present (refreshed), occupancy probe on",
      () => [bundle.bin, "port", "reserve", "--tag", "warm"]
    ],
    [
      "keel port reserve (new)",
      "reservation absent (created), occupancy probe on",
      (round) => [bundle.bin, "port", "reserve", "--tag", `t${round}`]
    ],
    ["keel --help", "the root's help page, stdout a pipe", () => [bundle.bin, "--help"]],
    [
      "keel usage error",
      "port reserve with an unknown option: one line on stderr, exit 2",
      () => [bundle.bin, "port", "reserve", "--no-such-option"],
      2
    ]
  ]
  try {
    // Creates the database and the `warm` reservation; warms the file cache for every command.
    for (const [, , args, status] of commands) once(args(-1), status)
    const samples = commands.map(() => ({ ms: [] as Array<number>, rss: [] as Array<number> }))
    for (let round = 0; round < sizes.cold; round++) {
      for (const [index, [, , args, status]] of commands.entries()) {
        const { ms, rss } = once(args(round), status)
        samples[index]?.ms.push(ms)
        samples[index]?.rss.push(rss)
      }
    }
    const keelMs = samples[1]?.ms ?? []
    const keelRate = keelMs.length / (keelMs.reduce((sum, ms) => sum + ms, 0) / 1000)
    return commands.map(([system, note], index): Report.Row => {
      const taken = samples[index] ?? { ms: [], rss: [] }
      const seconds = taken.ms.reduce((sum, ms) => sum + ms, 0) / 1000
      const rate = taken.ms.length / seconds
      return {
        system,
        backend: "sqlite",
        workload: "cold process",
        operations: taken.ms.length,
        seconds,
        opsPerSecond: rate,
        p50Ms: Report.percentile(taken.ms, 50),
        p99Ms: Report.percentile(taken.ms, 99),
        peakRssMiB: Math.max(...taken.rss),
        ratioToKeel: Math.round((rate / keelRate) * 100) / 100,
        note
      }
    })
  } catch (error) {
    return [
      pending("keel port reserve", `pending: ${error instanceof Error ? error.message : String(error)}`)
    ]
  }
}

const rows: Array<Report.Row> = []
try {
  for (const make of [async () => sqliteBackend(), postgresBackend, async () => tursoBackend()]) {
    const backend = await make()
    try {
      if (backend.name === "turso") {
        const migrated = await keel(backend.dsn, join(root, "migrate-turso"), false)
        await migrated.close()
        await backend.fill()
        rows.push(await run("keel", backend, 1, { system: "keel" }, "the Turso engine, one process"))
        continue
      }
      const migrated = await keel(backend.dsn, join(root, "migrate"), false)
      await migrated.close()
      await backend.fill()
      rows.push(await run("keel", backend, 1, { system: "keel" }))
      rows.push(await run("raw", backend, 1, { system: "raw" }, "the same statements by hand"))
      // The variants (occupancy probe, a longer busy_timeout) are left out of --quick.
      if (!Report.quick)
        rows.push(
          await run(
            "keel+occupancy",
            backend,
            1,
            { system: "keel", occupancy: true },
            "TCP bind probe on 127.0.0.1 and ::1 inside the allocation transaction"
          )
        )
      rows.push(await run("keel", backend, processes, { system: "keel" }))
      if (backend.name === "sqlite" && !Report.quick)
        rows.push(
          await run("keel, busy_timeout 250 ms", backend, processes, { system: "keel", busyTimeoutMs: 250 })
        )
      rows.push(await run("raw", backend, processes, { system: "raw" }, "the same statements by hand"))
      process.stderr.write(`reservation: ${backend.name} done\n`)
    } finally {
      await backend.drop()
    }
  }
  rows.push(...(await coldStarts()))
  Report.report("reservation", rows)
} finally {
  rmSync(root, { recursive: true, force: true })
}
