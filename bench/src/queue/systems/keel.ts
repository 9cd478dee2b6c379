/**
 * Keel's queue (`@keel/queue`) on SQLite or PostgreSQL, used as its README shows: `send`,
 * `sendBatch`, and `consume` with default options (archive on success, LISTEN/NOTIFY or in-process
 * wake-ups, 1 s poll fallback). Called from plain async code through a `ManagedRuntime`, as an
 * application that is not written with Effect would — except concurrent producers, which are fibers
 * of one `runPromise`, as an Effect application runs them.
 */
import * as Queue from "@keel/queue/Queue"
import * as Database from "@keel/sql/Database"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Scope from "effect/Scope"
import { main, payload, queueName } from "../workload.js"

await main(async (job) => {
  const runtime = ManagedRuntime.make(Queue.layer().pipe(Layer.provide(Database.layer(job.target))))
  const queues = await runtime.runPromise(Queue.Queues)
  await runtime.runPromise(queues.ensureQueue(queueName))
  return {
    enqueue: (payload) => runtime.runPromise(queues.send(queueName, payload)),
    enqueueBatch: (payloads) =>
      runtime.runPromise(
        queues.sendBatch(
          queueName,
          payloads.map((payload) => ({ payload }))
        )
      ),
    produce: {
      note: "8 producers = 8 fibers in one runPromise (Effect.forEach, concurrency 8), each a loop of send",
      run: (producers, count, from, timed) => {
        let next = 0
        const producer = Effect.gen(function* () {
          while (next < count) {
            const index = next++
            const t0 = performance.now()
            yield* queues.send(queueName, payload(from + index))
            timed(performance.now() - t0)
          }
        })
        return runtime.runPromise(
          Effect.forEach(Array.from({ length: producers }), () => producer, {
            concurrency: producers,
            discard: true
          })
        )
      }
    },
    consume: async (concurrency, handled) => {
      const scope = await runtime.runPromise(Scope.make())
      await runtime.runPromise(
        Scope.extend(
          queues.consume(queueName, () => Effect.sync(handled), { concurrency }),
          scope
        )
      )
      return { stop: () => runtime.runPromise(Scope.close(scope, Exit.void)) }
    },
    pending: async () => {
      const metrics = await runtime.runPromise(queues.metrics(queueName))
      return metrics.depth + metrics.inFlight + metrics.delayed
    },
    close: () => runtime.dispose()
  }
})
