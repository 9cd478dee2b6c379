/**
 * `pnpm --filter @keel/bench profile:cpu`: CPU time (user + system, `process.cpuUsage`) per
 * operation of Keel's queue on SQLite in this process: 20,000 sequential sends, then their drain by a
 * consumer with 8 handler slots, four rounds (the first is warm-up). Less noisy than wall-clock
 * rates on a shared machine; used for before/after comparisons of builds (run it alternately on
 * each revision). Prints `send drain` µs per operation for rounds 2–4.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Queue from "@keel/queue/Queue"
import * as Database from "@keel/sql/Database"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Scope from "effect/Scope"
import { payload } from "./workload.js"

const dir = mkdtempSync(join(tmpdir(), "keel-cpu-"))
const runtime = ManagedRuntime.make(
  Queue.layer().pipe(Layer.provide(Database.layer(`sqlite:${join(dir, "q.db")}`)))
)
const queues = await runtime.runPromise(Queue.Queues)
await runtime.runPromise(queues.ensureQueue("bench"))
const n = 20000
const cpu = () => {
  const u = process.cpuUsage()
  return u.user + u.system
}
const results: Array<string> = []
for (let r = 0; r < 4; r++) {
  const c0 = cpu()
  for (let i = 0; i < n; i++) await runtime.runPromise(queues.send("bench", payload(i)))
  const c1 = cpu()
  let handled = 0
  const done = await runtime.runPromise(Deferred.make<void>())
  const scope = await runtime.runPromise(Scope.make())
  await runtime.runPromise(
    Scope.extend(
      queues.consume(
        "bench",
        () => Effect.suspend(() => (++handled === n ? Deferred.succeed(done, undefined) : Effect.void)),
        { concurrency: 8 }
      ),
      scope
    )
  )
  await runtime.runPromise(Deferred.await(done))
  await runtime.runPromise(Scope.close(scope, Exit.void))
  const c2 = cpu()
  if (r >= 1) results.push(`${((c1 - c0) / n).toFixed(2)} ${((c2 - c1) / n).toFixed(2)}`)
}
console.log(results.join(" | "))
await runtime.dispose()
rmSync(dir, { recursive: true, force: true })
