/**
 * The seed reproducer's first half (DESIGN.md rule 1), with a real second process: SQLite file
 * locks only bite across connections.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Queue } from "@keel/queue"
import { Database, Retry } from "@keel/sql"
import { Processes, TestDatabase } from "@keel/testkit"
import { Effect, Layer, Metric } from "effect"
import { eventually, fixture, messageRows, layer as queueLayer, uniqueName } from "./support/QueueTest.js"

const sqliteFiles = TestDatabase.kinds.filter((kind) => kind === "sqlite" || kind === "libsql")

for (const kind of sqliteFiles) {
  describe(`Queue processes: seed reproducer (a) [${kind}]`, () => {
    layer(queueLayer(kind), { timeout: 180_000, excludeTestServices: true })((it) => {
      it.effect(
        "1,000 sends, each from a fresh producer and connection, while another process hammers the file: exactly 1,000 rows",
        () =>
          Effect.scoped(
            Effect.gen(function* () {
              const info = yield* TestDatabase.TestDatabase
              const queues = yield* Queue.Queues
              const name = uniqueName("seed")
              yield* queues.createQueue(name)
              const hammer = yield* Processes.spawn({
                script: fixture("hammer"),
                args: [info.dsn]
              })
              yield* eventually(
                "the hammer to write",
                Effect.sync(() => hammer.stdout().includes("ready")),
                "60 seconds"
              )
              const retried = Metric.tagged(Retry.retries, "proof", "transaction")
              const retriesBefore = (yield* Metric.value(retried)).count
              const ids: Array<number> = []
              for (let i = 0; i < 1_000; i++) {
                const fresh = Queue.layer().pipe(Layer.provide(Database.layer(info.dsn)))
                ids.push(
                  yield* Effect.provide(
                    Effect.flatMap(Queue.Queues, (q) => q.send(name, { i })),
                    fresh
                  )
                )
              }
              const hammerExit = yield* Effect.zipRight(hammer.kill("SIGKILL"), hammer.exited)
              expect(hammerExit.stderr).toBe("")
              expect(new Set(ids).size).toBe(1_000)
              expect(yield* messageRows(name)).toBe(1_000)
              // The hammer really contended: some BEGIN IMMEDIATE found the file busy and was re-run.
              expect((yield* Metric.value(retried)).count).toBeGreaterThan(retriesBefore)
            })
          ),
        { timeout: 90_000 }
      )
    })
  })
}
