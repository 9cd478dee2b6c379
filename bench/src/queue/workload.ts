/**
 * The queue workload, the same for every system. Each system runs it in a child process of its own
 * (`systems/<name>.ts`), so the peak RSS of its rows is its own:
 *
 * 1. warm-up (untimed): `warmup` jobs enqueued one by one, as many by 8 concurrent producers, as many
 *    in batches, all drained (as many as each timed phase, so JIT and statement caches are hot for
 *    every system alike);
 * 2. `enqueue 1`: `jobs` sequential single enqueues; p50/p99 per enqueue;
 * 3. `drain, concurrency 1`: a consumer with one handler slot drains those jobs; the handler does
 *    nothing. The clock runs from starting the consumer until the system's own count of waiting and
 *    in-flight jobs is 0 (so the last acknowledgements are in); p50/p99 are the gaps between
 *    consecutive handler calls (the per-job cycle at concurrency 1, stalls in p99);
 * 4. `enqueue batch 100`: `jobs` enqueued 100 per call with the system's batch API; p50/p99 per call;
 * 5. `drain, concurrency 8`: the same drain with eight handler slots;
 * 6. `enqueue 1, 8 producers`: `jobs` single enqueues by 8 concurrent producers in this process, each
 *    awaiting its enqueue before the next; ops/s over the whole phase, p50/p99 per enqueue. The jobs
 *    are then drained untimed at the second concurrency, so the variants start from an empty queue.
 *
 * A system may add consumer variants (another documented way to consume): each drains `jobs`
 * freshly batch-enqueued jobs at each concurrency, as its own row.
 */
import * as Report from "../Report.js"

/** A small JSON job, the same for every system. */
export interface Payload {
  readonly order: number
  readonly customer: string
  readonly amount: number
  readonly items: ReadonlyArray<string>
}

/** The payload of job `i`. */
export const payload = (i: number): Payload => ({
  order: i,
  customer: "c-1234",
  amount: 42.5,
  items: ["a", "b"]
})

/** The name of the benchmark queue in every system. */
export const queueName = "bench"

/** How many jobs one batch enqueue carries. */
export const batchSize = 100

/** A running consumer. */
export interface Consumer {
  /** Stops it gracefully (in-flight handlers finish). */
  readonly stop: () => Promise<void>
}

/** Starts a consumer with `concurrency` handler slots whose handler only calls `handled()`. */
export type Consume = (concurrency: number, handled: () => void) => Promise<Consumer>

/**
 * `producers` concurrent producers enqueue `count` jobs in all (payloads `from`, `from + 1`, …), each
 * producer one at a time, awaiting each enqueue; `timed` receives every enqueue's duration in ms.
 */
export type Produce = (
  producers: number,
  count: number,
  from: number,
  timed: (ms: number) => void
) => Promise<void>

/** How many concurrent producers `enqueue 1, N producers` runs. */
export const producers = 8

/** One system under test, opened on its own database (or key prefix). */
export interface System {
  readonly enqueue: (job: Payload) => Promise<unknown>
  /** Enqueues the jobs in one call; absent when the system has no batch API. */
  readonly enqueueBatch: ((jobs: ReadonlyArray<Payload>) => Promise<unknown>) | undefined
  readonly consume: Consume
  /**
   * Concurrent producers as this system's users would run them, with a note saying how. Default:
   * `asyncProducers` over `enqueue` (N async loops, each awaiting its enqueue).
   */
  readonly produce?: { readonly run: Produce; readonly note: string }
  /** Jobs waiting or in flight (not yet acknowledged). */
  readonly pending: () => Promise<number>
  readonly close: () => Promise<void>
  /** Other documented ways to consume, measured as rows of their own. */
  readonly variants?: ReadonlyArray<{
    readonly system: string
    readonly note: string
    readonly consume: Consume
  }>
}

/** What the coordinator asks one child to measure. */
export interface Job {
  readonly system: string
  readonly backend: string
  /** The backend of the Keel rows this system is compared with, when Keel does not run on its own. */
  readonly versus?: string | undefined
  /** The tuning or usage note of this system's rows. */
  readonly note?: string | undefined
  /** A SQLite file, a PostgreSQL URL or a Redis key prefix. */
  readonly target: string
  readonly jobs: number
  readonly warmup: number
  readonly concurrency: ReadonlyArray<number>
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** No drain may take longer than this: a system that stops delivering fails its row. */
const drainTimeoutMs = 180_000

/** Drains `count` jobs with `consume` at `concurrency`; the seconds taken and the handler-call gaps. */
const drain = async (
  system: System,
  consume: Consume,
  concurrency: number,
  count: number
): Promise<{ readonly seconds: number; readonly gaps: ReadonlyArray<number>; readonly extra: number }> => {
  const stamps: Array<number> = []
  let done: () => void = () => undefined
  const all = new Promise<void>((resolve) => {
    done = resolve
  })
  const handled = () => {
    stamps.push(performance.now())
    if (stamps.length === count) done()
  }
  const started = performance.now()
  const consumer = await consume(concurrency, handled)
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`drain stalled: ${stamps.length} of ${count} jobs handled`)),
      drainTimeoutMs
    )
  })
  try {
    await Promise.race([all, timeout])
    while ((await system.pending()) > 0) {
      if (performance.now() - started > drainTimeoutMs) throw new Error("acknowledgements never settled")
      await sleep(2)
    }
  } finally {
    clearTimeout(timer)
  }
  const seconds = (performance.now() - started) / 1000
  await consumer.stop()
  const gaps = stamps.slice(0, count).map((at, i) => at - (i === 0 ? started : (stamps[i - 1] ?? started)))
  return { seconds, gaps, extra: stamps.length - count }
}

/**
 * `producers` async loops, each awaiting `enqueue` before taking the next job from a shared counter,
 * until `count` jobs are taken.
 */
export const asyncProducers =
  (enqueue: (job: Payload) => Promise<unknown>): Produce =>
  async (producers, count, from, timed) => {
    let next = 0
    const producer = async () => {
      while (next < count) {
        const index = next++
        const t0 = performance.now()
        await enqueue(payload(from + index))
        timed(performance.now() - t0)
      }
    }
    await Promise.all(Array.from({ length: producers }, producer))
  }

const enqueueAll = async (system: System, from: number, count: number) => {
  if (system.enqueueBatch === undefined) {
    for (let i = 0; i < count; i++) await system.enqueue(payload(from + i))
    return
  }
  for (let i = 0; i < count; i += batchSize)
    await system.enqueueBatch(
      Array.from({ length: Math.min(batchSize, count - i) }, (_, k) => payload(from + i + k))
    )
}

/** Runs the workload on `system`; one row per (system, workload). */
export const measure = async (job: Job, system: System): Promise<ReadonlyArray<Report.Row>> => {
  const rows: Array<Report.Row> = []
  const label = (workload: string, system = job.system, note = job.note) => ({
    system,
    backend: job.backend,
    workload,
    ...(note === undefined ? {} : { note }),
    ...(job.versus === undefined ? {} : { versus: job.versus })
  })
  const drainRow = async (
    workload: string,
    consume: Consume,
    concurrency: number,
    name = job.system,
    note = job.note
  ) => {
    const result = await drain(system, consume, concurrency, job.jobs)
    const duplicates = result.extra === 0 ? [] : [`${result.extra} handler calls beyond ${job.jobs}`]
    rows.push({
      ...label(workload, name, [note, ...duplicates].filter(Boolean).join("; ") || undefined),
      operations: job.jobs,
      seconds: result.seconds,
      opsPerSecond: job.jobs / result.seconds,
      p50Ms: Report.percentile(result.gaps, 50),
      p99Ms: Report.percentile(result.gaps, 99),
      peakRssMiB: Report.peakRssMiB()
    })
  }
  const [first = 1, second = first] = job.concurrency
  const produce = system.produce?.run ?? asyncProducers(system.enqueue)

  // 1. warm-up
  for (let i = 0; i < job.warmup; i++) await system.enqueue(payload(-1 - i))
  await produce(producers, job.warmup, -5_000_000, () => undefined)
  await enqueueAll(system, -10_000_000, job.warmup)
  await drain(system, system.consume, first, 3 * job.warmup)

  // 2–3. single enqueues, then a drain at the first concurrency
  rows.push(await Report.latency(label("enqueue 1"), job.jobs, (i) => system.enqueue(payload(i))))
  await drainRow(`drain, concurrency ${first}`, system.consume, first)

  // 4–5. batch enqueues, then a drain at the second concurrency
  const batches = Math.ceil(job.jobs / batchSize)
  const { enqueueBatch } = system
  if (enqueueBatch === undefined) {
    rows.push({
      ...label(`enqueue batch ${batchSize}`, job.system, "no batch enqueue API"),
      operations: 0,
      seconds: 0,
      opsPerSecond: Number.NaN,
      peakRssMiB: Report.peakRssMiB()
    })
    for (let i = 0; i < job.jobs; i++) await system.enqueue(payload(job.jobs + i))
  } else {
    const timed = await Report.latency(label(`enqueue batch ${batchSize}`), batches, (b) =>
      enqueueBatch(Array.from({ length: batchSize }, (_, k) => payload(job.jobs + b * batchSize + k)))
    )
    const jobs = batches * batchSize
    rows.push({ ...timed, operations: jobs, opsPerSecond: jobs / timed.seconds })
    // The drain below must find exactly `jobs.jobs` waiting.
    if (jobs !== job.jobs) throw new Error(`jobs (${job.jobs}) must be a multiple of ${batchSize}`)
  }
  await drainRow(`drain, concurrency ${second}`, system.consume, second)

  // 6. concurrent producers in one process, then an untimed drain (the variants expect an empty queue)
  const samples: Array<number> = []
  const produced = await Report.throughput(
    // The default producers (async loops) are described in the README; a system's own say how.
    label(
      `enqueue 1, ${producers} producers`,
      job.system,
      [job.note, system.produce?.note].filter(Boolean).join("; ") || undefined
    ),
    job.jobs,
    () => produce(producers, job.jobs, 3 * job.jobs, (ms) => samples.push(ms))
  )
  if (samples.length !== job.jobs) throw new Error(`${samples.length} of ${job.jobs} enqueues were timed`)
  rows.push({
    ...produced,
    p50Ms: Report.percentile(samples, 50),
    p99Ms: Report.percentile(samples, 99)
  })
  await drain(system, system.consume, second, job.jobs)

  // Variants: other documented ways to consume.
  for (const variant of system.variants ?? []) {
    for (const concurrency of [first, second]) {
      await enqueueAll(system, 2 * job.jobs, job.jobs)
      await drainRow(
        `drain, concurrency ${concurrency}`,
        variant.consume,
        concurrency,
        variant.system,
        variant.note
      )
    }
  }
  return rows
}

/**
 * The entry point of a system's child process: reads the job from argv, opens the system, measures,
 * prints the rows as one JSON line and exits (some libraries leave timers behind).
 */
export const main = async (open: (job: Job) => Promise<System>): Promise<void> => {
  const job = JSON.parse(process.argv[2] ?? "{}") as Job
  const system = await open(job)
  let rows: ReadonlyArray<Report.Row>
  try {
    rows = await measure(job, system)
  } finally {
    await system.close()
  }
  process.stdout.write(`${JSON.stringify(rows)}\n`)
  process.exit(0)
}
