/**
 * The cursor workload, the same for Keel and for the raw driver, each in a child process of its
 * own (`keel.ts`, `raw.ts`) so the peak RSS of its rows is its own:
 *
 * - `set`: positions recorded per second. Keel's `set` is memory only (the background flusher
 *   persists); `raw` writes every position with its own autocommit upsert — what a consumer
 *   without a debounced store does — to show what the debounce buys.
 * - `flush N dirty`: persisting N dirty cursors (N = 1, 100, 10,000) in one transaction; one
 *   operation is one flush, p50/p99 per flush. The positions advance every round, so every upsert
 *   writes. Warm-up rounds (a tenth of the timed ones, at least three) are not timed, so that a
 *   flush of one — 3,000 rounds of ~0.1 ms — is measured warm, as a long-running flusher runs;
 *   making the cursors dirty is not timed.
 */
import * as Report from "../Report.js"

/** The namespace of every benchmark cursor. */
export const namespace = "bench"

/** How many peers `set` spreads its positions over. */
export const setPeers = 1_000

/** What the coordinator asks one child to measure. */
export interface Job {
  readonly backend: "sqlite" | "postgres" | "turso"
  readonly dsn: string
  readonly setOps: number
  readonly flushSizes: ReadonlyArray<readonly [size: number, rounds: number]>
}

/** The position of peer `peer` in round `round`: a stream id that grows every round. */
export const positionOf = (round: number, peer: number) => `${1_700_000_000_000 + round}-${peer}`

/** How one system makes `size` cursors dirty for a round (untimed) and flushes them (timed). */
export interface Flusher {
  readonly prepare: (peers: ReadonlyArray<string>, round: number) => Promise<void>
  readonly flush: (size: number) => Promise<void>
}

/** Untimed rounds before `rounds` timed ones: a tenth of them, at least three. */
export const warmUp = (rounds: number): number => Math.max(3, Math.ceil(rounds / 10))

/** Times `rounds` flushes of `size` dirty cursors after `warmUp(rounds)` untimed rounds. */
export const flushRow = async (
  label: { readonly system: string; readonly backend: string },
  size: number,
  rounds: number,
  flusher: Flusher
): Promise<Report.Row> => {
  const peers = Array.from({ length: size }, (_, i) => `${label.system}-${size}-${i}`)
  const samples: Array<number> = []
  const untimed = warmUp(rounds)
  for (let round = 0; round < rounds + untimed; round++) {
    await flusher.prepare(peers, round)
    const started = performance.now()
    await flusher.flush(size)
    if (round >= untimed) samples.push(performance.now() - started)
  }
  const seconds = samples.reduce((sum, sample) => sum + sample, 0) / 1000
  return {
    ...label,
    workload: `flush ${size} dirty`,
    operations: rounds,
    seconds,
    opsPerSecond: rounds / seconds,
    p50Ms: Report.percentile(samples, 50),
    p99Ms: Report.percentile(samples, 99),
    peakRssMiB: Report.peakRssMiB(),
    note: `${Math.round((rounds * size) / seconds)} cursors/s`
  }
}

/** The entry point of a child: reads the job, measures, prints the rows as one JSON line. */
export const main = async (measure: (job: Job) => Promise<ReadonlyArray<Report.Row>>): Promise<void> => {
  const job = JSON.parse(process.argv[2] ?? "{}") as Job
  const rows = await measure(job)
  process.stdout.write(`${JSON.stringify(rows)}\n`)
  process.exit(0)
}
