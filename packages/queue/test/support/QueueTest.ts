/**
 * Test wiring for the queue contract suite: the service over a fresh database of each backend,
 * unique queue names, a fingerprint of every queue table (to show a failed call changed nothing),
 * and a TestClock that starts at the real time.
 */
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import * as SqlClient from "@effect/sql/SqlClient"
import { type Consumer, Queue, QueueStore, type Schemas } from "@keel/queue"
import type { Backend, Database } from "@keel/sql"
import { TestDatabase } from "@keel/testkit"
import { Deferred, type Duration, Effect, Layer, Ref, TestClock, TestContext } from "effect"

/** The queue service, its database and the test database info, for `kind`. */
export const layer = (
  kind: TestDatabase.Kind,
  config: Queue.QueueConfig = {}
): Layer.Layer<
  Queue.Queues | SqlClient.SqlClient | Backend.Backend | TestDatabase.TestDatabase,
  Queue.LayerError | Database.OpenError
> => Queue.layer(config).pipe(Layer.provideMerge(TestDatabase.layer(kind)))

/** Where the contract suites run: the memory store and every SQL backend. */
export type Store = TestDatabase.Kind | "memory"

/** Every store the contract suites run on (the SQL ones narrowed by `KEEL_TEST_BACKENDS`). */
export const stores: ReadonlyArray<Store> = ["memory", ...TestDatabase.kinds]

/** The queue service over `store` (a database that fails to open is a defect of the test). */
export const storeLayer = (store: Store): Layer.Layer<Queue.Queues> =>
  store === "memory"
    ? Queue.layerStore().pipe(Layer.provide(QueueStore.layerMemory), Layer.orDie)
    : Layer.orDie(layer(store))

let counter = 0

/** A queue name no other test of this process uses. */
export const uniqueName = (prefix: string): string => `${prefix}-${process.pid}-${++counter}`

/** Row counts and sums of every queue table: equal fingerprints mean nothing was written. */
export const fingerprint = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<Record<string, unknown>>`SELECT
    (SELECT COUNT(*) FROM keel_queue_queues) AS queues,
    (SELECT COALESCE(SUM((visibility_timeout_ms + max_deliveries + retention_ms + updated_at) % 1000003), 0) FROM keel_queue_queues) AS settings,
    (SELECT COUNT(*) FROM keel_queue_messages) AS messages,
    (SELECT COALESCE(SUM((available_at % 1000003) + deliveries), 0) FROM keel_queue_messages) AS message_state,
    (SELECT COUNT(*) FROM keel_queue_messages WHERE lease_token IS NOT NULL) AS leased,
    (SELECT COUNT(*) FROM keel_queue_archive) AS archived,
    (SELECT COUNT(*) FROM keel_queue_dedup_keys) AS keys,
    (SELECT COUNT(*) FROM keel_queue_workers) AS workers`
  return Object.fromEntries(Object.entries(rows[0] ?? {}).map(([key, value]) => [key, Number(value)]))
})

/** Messages of one queue still in the messages table. */
export const messageRows = (queue: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ n: number }>`SELECT COUNT(*) AS n FROM keel_queue_messages m
      JOIN keel_queue_queues q ON q.id = m.queue_id WHERE q.name = ${queue}`
    return Number(rows[0]?.n ?? 0)
  })

/** Archive rows of one queue. */
export const archiveRows = (queue: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ n: number }>`SELECT COUNT(*) AS n FROM keel_queue_archive a
      JOIN keel_queue_queues q ON q.id = a.queue_id WHERE q.name = ${queue}`
    return Number(rows[0]?.n ?? 0)
  })

/** Runs `body` with a TestClock set to the real time now (so stored times look real). */
export const withTestClock = <A, E, R>(body: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.provide(
    Effect.zipRight(
      Effect.flatMap(
        Effect.sync(() => Date.now()),
        (now) => TestClock.setTime(now)
      ),
      body
    ),
    TestContext.TestContext
  )

/** A child entry point of this package's tests (the testkit bundles it once per test process). */
export const fixture = (name: string): string =>
  join(dirname(fileURLToPath(import.meta.url)), "..", "fixtures", `${name}.ts`)

/** Waits (polling every 50 ms, at most `within`) until `check` holds; fails naming `what`. */
export const eventually = <E, R>(
  what: string,
  check: Effect.Effect<boolean, E, R>,
  within: Duration.DurationInput
): Effect.Effect<void, E | Error, R> =>
  Effect.timeoutFail(
    Effect.gen(function* () {
      while (!(yield* check)) yield* Effect.sleep("50 millis")
    }),
    { duration: within, onTimeout: () => new Error(`timed out waiting for: ${what}`) }
  )

/**
 * Runs a consumer of `queue` until its handler has been called `calls` times (after each call
 * `handler` made, whatever its outcome), then closes it (a graceful shutdown): the ids the handler
 * saw, in call order, and the consumer's stats after the shutdown.
 */
export const consumeUntil = <E>(
  queues: Queue.Service,
  queue: string,
  calls: number,
  options: Consumer.ConsumeOptions,
  handler: (message: Schemas.Leased) => Effect.Effect<void, E> = () => Effect.void
) =>
  Effect.gen(function* () {
    const seen = yield* Ref.make<ReadonlyArray<number>>([])
    const done = yield* Deferred.make<void>()
    const record = (message: Schemas.Leased) =>
      Effect.flatMap(
        Ref.updateAndGet(seen, (ids) => [...ids, message.id]),
        (ids) => (ids.length === calls ? Deferred.succeed(done, undefined) : Effect.void)
      )
    const stats = yield* Effect.scoped(
      Effect.gen(function* () {
        const consumer = yield* queues.consume(
          queue,
          (message) => Effect.ensuring(handler(message), record(message)),
          options
        )
        yield* Deferred.await(done)
        return consumer.stats
      })
    )
    return { seen: yield* Ref.get(seen), stats: yield* stats }
  })
