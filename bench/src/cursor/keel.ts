/**
 * Keel's cursor store (`@keel/cursor`) in a child of its own: `set` in memory, and `flush` of N
 * dirty cursors (the background flusher is set to once an hour so that only the timed flushes
 * write). Called through a `ManagedRuntime`, as an application not written with Effect would.
 */
import * as Cursor from "@keel/cursor/Cursor"
import * as Database from "@keel/sql/Database"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Report from "../Report.js"
import { flushRow, main, namespace, positionOf, setPeers } from "./workload.js"

await main(async (job) => {
  const rows: Array<Report.Row> = []
  const runtime = ManagedRuntime.make(
    Cursor.layer({ namespace, flushInterval: Duration.hours(1) }).pipe(Layer.provide(Database.layer(job.dsn)))
  )
  try {
    const store = await runtime.runPromise(Cursor.Cursors)
    const peers = Array.from({ length: setPeers }, (_, i) => `set-${i}`)
    const setMany = (base: number, count: number) =>
      Effect.gen(function* () {
        for (let i = 0; i < count; i++) {
          const index = base + i
          yield* store.set(peers[index % setPeers] ?? "set-0", `${1_600_000_000_000 + index}-0`)
        }
      })
    await runtime.runPromise(setMany(0, 20_000))
    rows.push(
      await Report.throughput(
        { system: "keel", backend: job.backend, workload: "set", note: `${setPeers} peers, memory only` },
        job.setOps,
        () => runtime.runPromise(setMany(20_000, job.setOps))
      )
    )
    await runtime.runPromise(store.flush)
    for (const [size, rounds] of job.flushSizes) {
      rows.push(
        await flushRow({ system: "keel", backend: job.backend }, size, rounds, {
          prepare: (names, round) =>
            runtime.runPromise(
              Effect.forEach(names, (peer, i) => store.set(peer, positionOf(round, i)), { discard: true })
            ),
          flush: async (expected) => {
            const result = await runtime.runPromise(store.flush)
            if (result.persisted !== expected) throw new Error(`flushed ${result.persisted} of ${expected}`)
          }
        })
      )
    }
  } finally {
    await runtime.dispose()
  }
  return rows
})
