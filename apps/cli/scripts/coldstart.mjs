/**
 * Cold-start benchmark for `keel port reserve`: fresh processes against an existing SQLite
 * database, the reservation already present (refreshed) and absent (created), compared with
 * `node -e 0`. Prints medians and the ratio. Usage: node scripts/coldstart.mjs [runs] (default 20,
 * at least 10); builds dist/ first when it is missing (`node scripts/build.mjs [--single-file]`).
 */
import { spawnSync } from "node:child_process"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const runs = Math.max(10, Number(process.argv[2] ?? 20))
const scripts = dirname(fileURLToPath(import.meta.url))
const keel = join(scripts, "..", "bin", "keel.cjs")
if (!existsSync(join(scripts, "..", "dist", "keel.cjs"))) {
  spawnSync(process.execPath, [join(scripts, "build.mjs")], { stdio: "inherit" })
}
const dir = mkdtempSync(join(tmpdir(), "keel-coldstart-"))
const env = { ...process.env, KEEL_DB: `sqlite:${join(dir, "keel.db")}` }

const time = (args, expectedStatus = 0) => {
  const started = process.hrtime.bigint()
  const result = spawnSync(process.execPath, args, { cwd: dir, env, encoding: "utf8" })
  const elapsed = Number(process.hrtime.bigint() - started) / 1e6
  if (result.status !== expectedStatus)
    throw new Error(`${args.join(" ")} exited ${result.status}: ${result.stderr}`)
  return elapsed
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

const report = (name, samples) => {
  const result = { name, median: median(samples), min: Math.min(...samples), max: Math.max(...samples) }
  console.log(
    `${name.padEnd(32)} median ${result.median.toFixed(1).padStart(7)} ms  min ${result.min.toFixed(1).padStart(7)}  max ${result.max.toFixed(1).padStart(7)}`
  )
  return result
}

// The commands run interleaved, one of each per round, so load from other processes on the
// machine affects them alike.
const commands = [
  ["node -e 0", () => ["-e", "0"]],
  ["keel --help", () => [keel, "--help"]],
  ["keel port reserve (present)", () => [keel, "port", "reserve", "--tag", "warm"]],
  ["keel port reserve (absent)", (round) => [keel, "port", "reserve", "--tag", `t${round}`]],
  ["keel usage error", () => [keel, "port", "reserve", "--no-such-option"], 2]
]

try {
  time([keel, "port", "reserve", "--tag", "warm"])
  for (const [, args, status] of commands) time(args(-1), status)
  const samples = commands.map(() => [])
  for (let round = 0; round < runs; round++) {
    for (const [index, [, args, status]] of commands.entries()) samples[index].push(time(args(round), status))
  }
  const [baseline, help, present, absent, usage] = commands.map(([name], index) =>
    report(name, samples[index])
  )
  console.log(
    `ratio to node -e 0 (medians): --help ${(help.median / baseline.median).toFixed(1)}x, reserve present ${(present.median / baseline.median).toFixed(1)}x, reserve absent ${(absent.median / baseline.median).toFixed(1)}x, usage error ${(usage.median / baseline.median).toFixed(1)}x`
  )
} finally {
  rmSync(dir, { recursive: true, force: true })
}
