/**
 * `bench/http`: the real `keel serve` (the CLI bundle, plain node, default logging: one INFO line
 * per request, logfmt) on a fresh SQLite file and on a fresh PostgreSQL database, driven over HTTP
 * by autocannon with 32 keep-alive connections (see `load.ts`):
 *
 * - `http send`: `POST /queues/bench/messages`; ops/s = 2xx responses per second, p50/p99 per request;
 * - `http read+ack`: read one message, archive it by its lease; ops/s = pairs per second, p50/p99
 *   per pair. The queue is filled beforehand with more messages than the run can take.
 *
 * Each workload runs untimed first (warm-up: V8 optimizes the server's hot paths), then timed. Peak
 * RSS is the server's `VmHWM` after the workload. autocannon runs in this process, on the same
 * cores as the server (and PostgreSQL): the numbers are what one machine does end to end.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Postgres from "../Postgres.js"
import * as Report from "../Report.js"
import * as Load from "./load.js"
import * as Server from "./server.js"

const connections = 32
const timing = Report.quick ? { warmup: 1, seconds: 2 } : { warmup: 3, seconds: 10 }
const root = mkdtempSync(join(tmpdir(), "keel-bench-http-"))

interface Backend {
  readonly name: "sqlite" | "postgres"
  readonly dsn: string
  readonly drop: () => Promise<void>
}

const sqlite = async (): Promise<Backend> => ({
  name: "sqlite",
  dsn: `sqlite:${join(root, "sqlite", "keel.db")}`,
  drop: async () => {}
})

/** A fresh database, dropped afterwards. */
const postgres = async (): Promise<Backend> => {
  const database = await Postgres.fresh(`keel_bench_http_${process.pid}`)
  return { name: "postgres", dsn: database.url, drop: database.drop }
}

/** The row of one measured workload. */
const rowOf = (
  backend: Backend,
  workload: string,
  measured: Load.Measured,
  peakRssMiB: number,
  describe: string
): Report.Row => {
  const problems = [
    measured.non2xx === 0 ? "" : `${measured.non2xx} non-2xx`,
    measured.errors === 0 ? "" : `${measured.errors} connection errors (${measured.timeouts} timeouts)`,
    measured.emptyReads === 0 ? "" : `${measured.emptyReads} empty reads`
  ].filter(Boolean)
  return {
    system: "keel",
    backend: backend.name,
    workload,
    operations: measured.operations,
    seconds: measured.seconds,
    opsPerSecond: measured.operations / measured.seconds,
    p50Ms: Report.percentile(measured.samples, 50),
    p99Ms: Report.percentile(measured.samples, 99),
    peakRssMiB,
    note: [
      `keel serve, ${connections} connections, ${timing.seconds} s`,
      describe,
      `${Math.round(measured.requests / measured.seconds)} req/s`,
      problems.length === 0 ? "0 non-2xx" : problems.join(", ")
    ]
      .filter(Boolean)
      .join("; ")
  }
}

/** Both workloads on one server over `backend`. */
const measure = async (bin: string, backend: Backend): Promise<ReadonlyArray<Report.Row>> => {
  const dir = join(root, backend.name)
  mkdirSync(dir, { recursive: true })
  const server = await Server.start({ args: [bin, "serve"], dsn: backend.dsn, dir })
  const load = { connections, seconds: timing.seconds }
  const warmup = { connections, seconds: timing.warmup }
  try {
    await Load.createQueue(server.url)
    await Load.send(server.url, warmup)
    const sent = await Load.send(server.url, load)
    const sendRow = rowOf(backend, "http send", sent, server.peakRssMiB(), "")

    // A read+ack pair is two requests that each write, so it is not expected to outrun a send: twice
    // what the sends managed, for the warm-up and the timed run, keeps the queue from running dry
    // (empty reads would be counted in the note).
    const sendRate = sent.operations / sent.seconds
    await Load.fill(server.url, Math.ceil(2 * sendRate * (timing.warmup + timing.seconds)) + 1000)
    await Load.readAck(server.url, warmup)
    const pairs = await Load.readAck(server.url, load)
    const readRow = rowOf(
      backend,
      "http read+ack",
      pairs,
      server.peakRssMiB(),
      "read qty 1 + archive by lease, per pair"
    )
    return [sendRow, readRow]
  } finally {
    await server.stop()
  }
}

const rows: Array<Report.Row> = []
let failed = false
try {
  const bin = Server.keelBin()
  const backends = [["sqlite", sqlite] as const, ["postgres", postgres] as const]
  for (const [name, make] of backends.filter(([kind]) => Report.selected("keel", kind))) {
    const started = performance.now()
    let backend: Backend | undefined
    try {
      backend = await make()
      rows.push(...(await measure(bin, backend)))
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error)
      console.error(`http: keel serve on ${name} failed: ${message}`)
      failed = true
      rows.push({
        system: "keel",
        backend: name,
        workload: "all",
        operations: 0,
        seconds: 0,
        opsPerSecond: Number.NaN,
        peakRssMiB: Number.NaN,
        note: `failed: ${message.split("\n")[0]}`
      })
    } finally {
      await backend?.drop()
    }
    console.error(`http: ${name}: ${((performance.now() - started) / 1000).toFixed(1)} s`)
  }
  Report.report("http", rows)
} finally {
  rmSync(root, { recursive: true, force: true })
}
if (failed) process.exit(1)
