/**
 * `pnpm --filter @keel/bench memory:queue`: where the memory of a queue process goes, and whether it
 * grows. Not a benchmark: nothing is timed.
 *
 * Each system runs in a child process of its own (the bench's bundle, under `node --expose-gc`) on a
 * SQLite file of its own, and goes through `--phases` identical phases (default 5), each sending
 * `--messages` jobs (default 10,000: half one by one, half 100 per batch call) and draining them (the
 * singles at concurrency 1, the batches at concurrency 8), as the queue bench's workload does. After
 * start-up and after each phase the child reads its memory twice: as the phase left it, and after a
 * forced full GC. What falls away with the GC was garbage V8 had not collected yet (peak RSS is
 * mostly that); what stays is held: live objects, the young generation V8 has grown, SQLite's page
 * cache, loaded code. A leak is memory that still grows phase over phase after the forced GC.
 * Each phase also counts its own collections (`v8.GCProfiler`): scavenges, full GCs, and per message
 * the KiB allocated in the young generation and the KiB scavenges promoted to the old one — the
 * garbage that piles up there until a full GC, i.e. what drives peak RSS.
 *
 * Flags: `--systems=keel,plainjob`, `--messages=N`, `--phases=N`, `--node-flags="…"` (more flags for
 * the children, e.g. `--max-semi-space-size=2`), `--snapshots=DIR` (a heap snapshot after the forced
 * GC of the first and of the last phase, for DevTools' Comparison view). Writes
 * `results/memory.json`.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import v8 from "node:v8"
import * as Child from "../Child.js"
import { payload, queueName } from "./workload.js"

/** One reading of the process's memory, in MiB. */
interface Reading {
  readonly rss: number
  readonly heapUsed: number
  readonly heapTotal: number
  /** V8's young generation, as committed (both semi-spaces). */
  readonly newSpace: number
  /** Memory of JavaScript objects held outside the V8 heap (array buffers included). */
  readonly external: number
}

/** The garbage collections of one phase (`v8.GCProfiler`), before its forced GC. */
interface Collections {
  readonly scavenges: number
  /** Mark-compacts and other full collections. */
  readonly full: number
  /** Bytes allocated in the young generation (its use before each GC, less its use after the one before). */
  readonly allocated: number
  /** Bytes scavenges moved into the old generation: what only a full GC can free again. */
  readonly promoted: number
}

/** What a child reports after start-up and after each phase. */
interface Phase {
  readonly phase: string
  /** Messages sent and drained in the phase. */
  readonly messages: number
  readonly collections: Collections
  /** As the phase left it. */
  readonly before: Reading
  /** After a forced full GC. */
  readonly after: Reading
  /** Peak RSS so far, in MiB. */
  readonly peakRss: number
  /** The database file and its WAL, in MiB. */
  readonly database: number
}

/** What the coordinator asks one child to do. */
interface Job {
  readonly system: string
  readonly file: string
  readonly messages: number
  readonly phases: number
  readonly snapshots: string | undefined
}

/** The operations a phase needs from a system. */
interface System {
  readonly send: (job: unknown) => Promise<unknown>
  readonly sendBatch: (jobs: ReadonlyArray<unknown>) => Promise<unknown>
  /** Starts a consumer whose handler only calls `handled`; resolves with a function that stops it. */
  readonly consume: (concurrency: number, handled: () => void) => Promise<() => Promise<void>>
  /** Jobs waiting or in flight. */
  readonly pending: () => Promise<number>
  readonly close: () => Promise<void>
}

// The systems, opened as the queue bench opens them (`systems/*.ts`). Each is imported only in the
// child that runs it (the bundle loads a dynamic import on demand), so plainjob's process never loads
// Effect and Keel's never loads plainjob.

/** Keel through a `ManagedRuntime`, default options, archive on success (`systems/keel.ts`). */
const keel = async (file: string): Promise<System> => {
  const [{ Queue }, { Database }, { Effect, Exit, Layer, ManagedRuntime, Scope }] = await Promise.all([
    import("@keel/queue"),
    import("@keel/sql"),
    import("effect")
  ])
  const runtime = ManagedRuntime.make(Queue.layer().pipe(Layer.provide(Database.layer(`sqlite:${file}`))))
  const queues = await runtime.runPromise(Queue.Queues)
  await runtime.runPromise(queues.ensureQueue(queueName))
  return {
    send: (job) => runtime.runPromise(queues.send(queueName, job)),
    sendBatch: (jobs) =>
      runtime.runPromise(
        queues.sendBatch(
          queueName,
          jobs.map((job) => ({ payload: job }))
        )
      ),
    consume: async (concurrency, handled) => {
      const scope = await runtime.runPromise(Scope.make())
      await runtime.runPromise(
        Scope.extend(
          queues.consume(queueName, () => Effect.sync(handled), { concurrency }),
          scope
        )
      )
      return () => runtime.runPromise(Scope.close(scope, Exit.void))
    },
    pending: async () => {
      const metrics = await runtime.runPromise(queues.metrics(queueName))
      return metrics.depth + metrics.inFlight + metrics.delayed
    },
    close: () => runtime.dispose()
  }
}

/** plainjob on better-sqlite3, N workers for concurrency N, done jobs kept (`systems/plainjob.ts`). */
const plainjob = async (file: string): Promise<System> => {
  const [{ better, defineQueue, defineWorker, JobStatus }, { default: Sqlite }] = await Promise.all([
    import("plainjob"),
    import("better-sqlite3")
  ])
  const silent = {
    error: () => undefined,
    warn: () => undefined,
    info: () => undefined,
    debug: () => undefined
  }
  const queue = defineQueue({ connection: better(new Sqlite(file)), logger: silent })
  return {
    send: async (job) => queue.add(queueName, job),
    sendBatch: async (jobs) => queue.addMany(queueName, [...jobs]),
    consume: async (concurrency, handled) => {
      const workers = Array.from({ length: concurrency }, () =>
        defineWorker(queueName, async () => handled(), { queue, logger: silent })
      )
      const running = workers.map((worker) => worker.start())
      return async () => {
        await Promise.all(workers.map((worker) => worker.stop()))
        await Promise.all(running)
      }
    },
    pending: async () =>
      queue.countJobs({ type: queueName, status: JobStatus.Pending }) +
      queue.countJobs({ type: queueName, status: JobStatus.Processing }),
    close: async () => queue.close()
  }
}

const systems: Readonly<Record<string, (file: string) => Promise<System>>> = { keel, plainjob }

// ---- the child -----------------------------------------------------------------------------------

const mib = (bytes: number) => Math.round((bytes / 1048576) * 10) / 10

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

type GcStatistics = ReturnType<v8.GCProfiler["stop"]>

const spaceUsed = (spaces: ReadonlyArray<{ spaceName: string; spaceUsedSize: number }>, name: string) =>
  spaces.find((space) => space.spaceName === name)?.spaceUsedSize ?? 0

/** Sums up the collections `GCProfiler` saw; `young` is the young generation's use after the last one before. */
const collections = (
  statistics: GcStatistics,
  young: number
): { readonly collections: Collections; readonly young: number } => {
  let scavenges = 0
  let full = 0
  let allocated = 0
  let promoted = 0
  let after = young
  for (const gc of statistics?.statistics ?? []) {
    const before = gc.beforeGC.heapSpaceStatistics
    const done = gc.afterGC.heapSpaceStatistics
    allocated += Math.max(0, spaceUsed(before, "new_space") - after)
    after = spaceUsed(done, "new_space")
    if (gc.gcType === "Scavenge") {
      scavenges++
      promoted += Math.max(0, spaceUsed(done, "old_space") - spaceUsed(before, "old_space"))
    } else full++
  }
  return { collections: { scavenges, full, allocated, promoted }, young: after }
}

const reading = (): Reading => {
  const usage = process.memoryUsage()
  const young = v8.getHeapSpaceStatistics().find((space) => space.space_name === "new_space")
  return {
    rss: mib(usage.rss),
    heapUsed: mib(usage.heapUsed),
    heapTotal: mib(usage.heapTotal),
    newSpace: mib(young?.space_size ?? 0),
    external: mib(usage.external)
  }
}

/** Starts a consumer, waits until `count` jobs were handled and acknowledged, and stops it. */
const drain = async (system: System, concurrency: number, count: number) => {
  let handled = 0
  let done: () => void = () => undefined
  const all = new Promise<void>((resolve) => {
    done = resolve
  })
  const stop = await system.consume(concurrency, () => {
    handled++
    if (handled === count) done()
  })
  await all
  while ((await system.pending()) > 0) await sleep(2)
  await stop()
}

const child = async (job: Job): Promise<void> => {
  const gc = globalThis.gc
  if (gc === undefined) throw new Error("memory.ts: the child needs node --expose-gc")
  const open = systems[job.system]
  if (open === undefined) throw new Error(`memory.ts: unknown system ${job.system}`)
  const system = await open(job.file)
  const size = (path: string) => (existsSync(path) ? statSync(path).size : 0)
  const phases: Array<Phase> = []
  let profiler = new v8.GCProfiler()
  let young = 0
  const record = async (phase: string, messages: number, snapshot: boolean) => {
    const before = reading()
    const counted = collections(profiler.stop(), young)
    gc()
    // V8 unmaps freed pages from background tasks: let them run, then collect once more.
    await sleep(200)
    gc()
    phases.push({
      phase,
      messages,
      collections: counted.collections,
      before,
      after: reading(),
      peakRss: mib(process.resourceUsage().maxRSS * 1024),
      database: mib(size(job.file) + size(`${job.file}-wal`))
    })
    if (snapshot && job.snapshots !== undefined) {
      v8.writeHeapSnapshot(join(job.snapshots, `${job.system}-${phase.replace(/\W+/g, "-")}.heapsnapshot`))
    }
    young =
      v8.getHeapSpaceStatistics().find((space) => space.space_name === "new_space")?.space_used_size ?? 0
    profiler = new v8.GCProfiler()
    profiler.start()
  }
  profiler.start()
  await record("start-up", 0, false)
  const half = Math.floor(job.messages / 2)
  let next = 0
  for (let phase = 1; phase <= job.phases; phase++) {
    for (let i = 0; i < half; i++) await system.send(payload(next++))
    await drain(system, 1, half)
    for (let i = 0; i < half; i += 100) {
      await system.sendBatch(Array.from({ length: Math.min(100, half - i) }, () => payload(next++)))
    }
    await drain(system, 8, half)
    await record(`phase ${phase}`, 2 * half, phase === 1 || phase === job.phases)
  }
  await system.close()
  process.stdout.write(`${JSON.stringify(phases)}\n`)
  process.exit(0)
}

// ---- the coordinator -------------------------------------------------------------------------------

const flag = (name: string): string | undefined =>
  process.argv.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3)

const growth = (first: number, last: number) =>
  `${first} → ${last} MiB (${last >= first ? "+" : ""}${Math.round(((last - first) / first) * 100)}%)`

const perMessage = (bytes: number, messages: number) =>
  messages === 0 ? "-" : (bytes / 1024 / messages).toFixed(1)

const render = (system: string, phases: ReadonlyArray<Phase>) => {
  const header = [
    "phase",
    "RSS",
    "heapUsed",
    "heapTotal",
    "newSpace",
    "external",
    "RSS gc",
    "heapUsed gc",
    "heapTotal gc",
    "newSpace gc",
    "peak RSS",
    "db file",
    "scavenges",
    "full GCs",
    "KiB alloc/msg",
    "KiB promoted/msg"
  ]
  const lines = phases.map((p) => [
    p.phase,
    ...[
      p.before.rss,
      p.before.heapUsed,
      p.before.heapTotal,
      p.before.newSpace,
      p.before.external,
      p.after.rss,
      p.after.heapUsed,
      p.after.heapTotal,
      p.after.newSpace,
      p.peakRss,
      p.database
    ].map((value) => value.toFixed(1)),
    String(p.collections.scavenges),
    String(p.collections.full),
    perMessage(p.collections.allocated, p.messages),
    perMessage(p.collections.promoted, p.messages)
  ])
  const widths = header.map((title, i) =>
    Math.max(title.length, ...lines.map((line) => (line[i] ?? "").length))
  )
  const row = (cells: ReadonlyArray<string>) =>
    cells.map((cell, i) => cell.padStart(widths[i] ?? 0)).join("  ")
  console.log(
    `\n## ${system} (MiB; "gc": after a forced full GC; collections and KiB per message: the phase's own)\n`
  )
  console.log(row(header))
  for (const line of lines) console.log(row(line))
  const first = phases[1]
  const last = phases[phases.length - 1]
  if (first !== undefined && last !== undefined && first !== last) {
    console.log(`\npeak RSS, ${first.phase} → ${last.phase}: ${growth(first.peakRss, last.peakRss)}`)
    console.log(`RSS after GC, ${first.phase} → ${last.phase}: ${growth(first.after.rss, last.after.rss)}`)
    console.log(
      `heap after GC, ${first.phase} → ${last.phase}: ${growth(first.after.heapUsed, last.after.heapUsed)}`
    )
  }
}

const coordinate = async () => {
  const names = (flag("systems") ?? "keel,plainjob").split(",").filter((name) => name !== "")
  const messages = Number(flag("messages") ?? 10_000)
  const phases = Number(flag("phases") ?? 5)
  const nodeFlags = (flag("node-flags") ?? "").split(" ").filter((text) => text !== "")
  const snapshots = flag("snapshots")
  if (snapshots !== undefined) mkdirSync(snapshots, { recursive: true })
  const root = mkdtempSync(join(tmpdir(), "keel-bench-memory-"))
  const results: Record<string, ReadonlyArray<Phase>> = {}
  try {
    for (const system of names) {
      const job: Job = { system, file: join(root, `${system}.db`), messages, phases, snapshots }
      const result = (await Child.runJson(
        fileURLToPath(import.meta.url),
        [JSON.stringify(job)],
        ["--expose-gc", ...nodeFlags]
      )) as ReadonlyArray<Phase>
      results[system] = result
      render(system, result)
    }
  } finally {
    rmSync(root, { recursive: true, force: true })
  }
  const file = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "results", "memory.json")
  mkdirSync(dirname(file), { recursive: true })
  writeFileSync(
    file,
    `${JSON.stringify({ node: process.version, nodeFlags, messages, phases, at: new Date().toISOString(), results }, null, 2)}\n`
  )
  console.log(`\nwrote ${file}`)
}

const argument = process.argv[2]
if (argument?.startsWith("{")) await child(JSON.parse(argument) as Job)
else await coordinate()
