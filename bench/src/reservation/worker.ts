/**
 * The loop of one reservation benchmark process; `worker-keel.ts` and `worker-raw.ts` are the
 * entry points (run as bundles by `Child.start`). Argument: JSON
 * `{ system, dsn, directory, warmup, ops, occupancy?, busyTimeoutMs? }`.
 * It connects (for Keel: starts the registry, occupancy probing as asked), does `warmup` untimed
 * operations, prints `ready`, waits for `go` on stdin so that every process of a run starts at
 * once, does `ops` reserve+release operations timing each, and prints
 * `{ "samples": [ms…], "start": epochMs, "end": epochMs, "peakRssMiB": n }`.
 */
import { createInterface } from "node:readline"
import * as Report from "../Report.js"
import type { Client } from "./workload.js"

/** What the coordinator asks one worker to do. */
export interface Job {
  readonly system: "keel" | "raw"
  readonly dsn: string
  readonly directory: string
  readonly warmup: number
  readonly ops: number
  readonly occupancy?: boolean | undefined
  readonly busyTimeoutMs?: number | undefined
}

/** What one worker reports. */
export interface Result {
  readonly samples: ReadonlyArray<number>
  readonly start: number
  readonly end: number
  readonly peakRssMiB: number
}

/** Runs the job of argv with the client `open` gives; prints the result. */
export const serve = async (open: (job: Job) => Promise<Client>): Promise<void> => {
  const job = JSON.parse(process.argv[2] ?? "{}") as Job
  const client = await open(job)
  for (let index = 0; index < job.warmup; index++) await client.once()
  const lines = createInterface({ input: process.stdin })
  const go = new Promise<void>((resolve) => lines.once("line", () => resolve()))
  process.stdout.write("ready\n")
  await go
  const samples: Array<number> = []
  const start = performance.timeOrigin + performance.now()
  for (let index = 0; index < job.ops; index++) {
    const t0 = performance.now()
    await client.once()
    samples.push(performance.now() - t0)
  }
  const end = performance.timeOrigin + performance.now()
  await client.close()
  lines.close()
  const result: Result = { samples, start, end, peakRssMiB: Report.peakRssMiB() }
  process.stdout.write(`${JSON.stringify(result)}\n`)
}
