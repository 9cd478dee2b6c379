/**
 * `pnpm --filter @keel/bench profile:http`: Keel's server on a fresh SQLite file under the `http
 * send` load (32 connections; 3 s untimed, then 10 s timed) with `node --cpu-prof`, and where its
 * CPU time goes during the timed window (`cpuprofile.ts`).
 *
 * The server is `apps/server/src/main.ts` bundled like the bench's children (only the workspace's
 * TypeScript in the bundle, every dependency loaded from its own files), so frames keep their
 * names and their package; `--entry=cli` runs the minified `keel serve` bundle instead (names
 * mangled: for req/s only). Flags: `--seconds=N`, `--warmup=N`, `--connections=N`,
 * `--log-level=LEVEL` (KEEL_LOG_LEVEL), `--no-prof` (no profiler: its overhead left out),
 * `--top=N` rows per table. The profile is kept in `bench/.tmp/profiles/`.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { availableParallelism, tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import * as Bundle from "@keel/sql/test/Bundle"
import * as Report from "../Report.js"
import * as CpuProfile from "./cpuprofile.js"
import * as Load from "./load.js"
import * as Server from "./server.js"

const here = dirname(fileURLToPath(import.meta.url))
const flag = (name: string): string | undefined =>
  process.argv.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3)
const seconds = Number(flag("seconds") ?? 10)
const warmup = Number(flag("warmup") ?? 3)
const connections = Number(flag("connections") ?? 32)
const logLevel = flag("log-level")
const entry = flag("entry") ?? "server"
const profiling = !process.argv.includes("--no-prof")
const top = Number(flag("top") ?? 30)

const dir = mkdtempSync(join(tmpdir(), "keel-profile-http-"))
const profiles = join(dir, "profiles")
mkdirSync(profiles)
try {
  const bundle =
    entry === "cli"
      ? undefined
      : await Bundle.runnable(join(here, "..", "..", "..", "apps", "server", "src", "main.ts"), {
          externals: "packages"
        })
  const step = (what: string) => process.stderr.write(`profile:http: ${what}\n`)
  step(bundle === undefined ? "building the CLI" : "bundled the server")
  const program = bundle === undefined ? [Server.keelBin(), "serve"] : [bundle]
  step("starting the server")
  const server = await Server.start({
    args: [...(profiling ? ["--cpu-prof", `--cpu-prof-dir=${profiles}`] : []), ...program],
    dsn: `sqlite:${join(dir, "keel.db")}`,
    dir,
    env: logLevel === undefined ? {} : { KEEL_LOG_LEVEL: logLevel }
  })
  let window: { readonly from: number; readonly to: number }
  let sent: Load.Measured
  let peakRssMiB = Number.NaN
  let cpu = { server: Number.NaN, client: Number.NaN }
  try {
    await Load.createQueue(server.url)
    step(`warm-up, ${warmup} s`)
    await Load.send(server.url, { connections, seconds: warmup })
    step(`timed, ${seconds} s`)
    // V8 stamps samples with the monotonic clock that process.hrtime reads (µs).
    const from = Number(process.hrtime.bigint() / 1000n)
    const serverCpu = server.cpuSeconds()
    const clientCpu = process.cpuUsage()
    sent = await Load.send(server.url, { connections, seconds })
    window = { from, to: Number(process.hrtime.bigint() / 1000n) }
    const client = process.cpuUsage(clientCpu)
    cpu = {
      server: server.cpuSeconds() - serverCpu,
      client: (client.user + client.system) / 1e6
    }
    peakRssMiB = server.peakRssMiB()
  } finally {
    step("stopping the server")
    await server.stop()
  }
  const logged = server.log().split("\n").length - 1
  console.log(
    `${entry === "cli" ? "keel serve (CLI bundle)" : "apps/server/src/main.ts (bundle, packages external)"}, ` +
      `KEEL_LOG_LEVEL=${logLevel ?? "(default: info)"}, ${connections} connections, ${seconds} s${profiling ? ", --cpu-prof" : ""}`
  )
  console.log(
    `http send: ${(sent.operations / sent.seconds).toFixed(0)} req/s (2xx), p50 ${Report.percentile(sent.samples, 50)} ms, ` +
      `p99 ${Report.percentile(sent.samples, 99)} ms, non-2xx ${sent.non2xx}, errors ${sent.errors}; ` +
      `server peak RSS ${peakRssMiB} MiB; ${logged} log lines`
  )
  console.log(
    `CPU in the timed window: server ${cpu.server.toFixed(2)} s (${((1e6 * cpu.server) / sent.requests).toFixed(0)} µs per request), ` +
      `autocannon ${cpu.client.toFixed(2)} s, over ${sent.seconds.toFixed(1)} s on ${availableParallelism()} cores`
  )
  if (profiling) {
    const file = readdirSync(profiles).find((name) => name.endsWith(".cpuprofile"))
    if (file === undefined) throw new Error("the server wrote no .cpuprofile")
    const profile = JSON.parse(readFileSync(join(profiles, file), "utf8")) as CpuProfile.Profile
    const inside = window.from >= profile.startTime && window.to <= profile.endTime
    if (!inside) console.log("(the timed window is not on the profile's clock: analysing the whole profile)")
    const analysis = CpuProfile.analyse(profile, {
      groups: CpuProfile.serverGroups,
      ...(inside ? window : {})
    })
    // Kept with a copy of the bundle's files, which are removed when this process exits:
    // `cpuprofile.ts PROFILE DIR` maps their frames to their modules later.
    const kept = join(here, "..", "..", ".tmp", "profiles")
    const stem = `http-send-${logLevel ?? "info"}-${Date.now()}`
    mkdirSync(kept, { recursive: true })
    copyFileSync(join(profiles, file), join(kept, `${stem}.cpuprofile`))
    for (const node of profile.nodes) {
      const path = node.callFrame.url.startsWith("file://") ? fileURLToPath(node.callFrame.url) : ""
      const below = CpuProfile.bundlePath(path)
      if (below === undefined || !existsSync(path)) continue
      mkdirSync(dirname(join(kept, stem, below)), { recursive: true })
      copyFileSync(path, join(kept, stem, below))
    }
    console.log(`profile: ${join(kept, `${stem}.cpuprofile`)} (bundle files: ${join(kept, stem)})`)
    CpuProfile.print(analysis, top)
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
