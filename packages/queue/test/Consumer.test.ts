import * as SqlClient from "@effect/sql/SqlClient"
import { expect, layer } from "@effect/vitest"
import { type Consumer, Queue, type Schemas } from "@keel/queue"
import { TestDatabase } from "@keel/testkit"
import { Deferred, type Duration, Effect, Exit, Fiber, Ref, Scope } from "effect"
import { archiveRows, messageRows, layer as queueLayer, uniqueName } from "./support/QueueTest.js"

/** Fast settings for consumers under test: short heartbeats and backoff, no waiting on shutdown. */
const quick: Consumer.ConsumeOptions = {
  pollInterval: "50 millis",
  heartbeatInterval: "100 millis",
  workerTimeout: "2 seconds",
  backoff: { initial: "10 millis", max: "100 millis" },
  shutdownTimeout: "2 seconds"
}

/** Waits (polling every 20 ms, at most `within`) until `check` holds. */
const eventually = <E, R>(
  check: Effect.Effect<boolean, E, R>,
  within: Duration.DurationInput = "20 seconds"
) =>
  Effect.timeoutFail(
    Effect.gen(function* () {
      while (!(yield* check)) yield* Effect.sleep("20 millis")
    }),
    { duration: within, onTimeout: () => new Error("condition not reached in time") }
  )

TestDatabase.describeEach("Queue contract: workers and consumers", (kind) => {
  layer(queueLayer(kind), { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("a registered worker is listed; closing its scope deregisters it and releases its leases", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const name = uniqueName("worker")
        yield* queues.createQueue(name)
        yield* queues.send(name, "job")
        const scope = yield* Scope.make()
        const worker = yield* Scope.extend(
          queues.registerWorker({ queue: name, workerId: `w-${name}` }),
          scope
        )
        expect((yield* queues.listWorkers(name)).map((w) => [w.id, w.queue, w.pid])).toEqual([
          [worker.id, name, process.pid]
        ])
        const [leased] = yield* queues.read(name, { workerId: worker.id, visibilityTimeout: "1 hour" })
        expect(leased?.workerId).toBe(worker.id)
        yield* Scope.close(scope, Exit.void)
        expect(yield* queues.listWorkers(name)).toEqual([])
        expect((yield* queues.read(name)).map((m) => m.id)).toEqual([leased?.id])
      })
    )

    it.effect("a live worker's id is refused; a stale one is taken over and its old leases released", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const sql = yield* SqlClient.SqlClient
        const name = uniqueName("takeover")
        yield* queues.createQueue(name)
        const id = `w-${name}`
        yield* Effect.scoped(
          Effect.gen(function* () {
            yield* queues.registerWorker({ queue: name, workerId: id })
            const error = yield* Effect.flip(
              Effect.scoped(queues.registerWorker({ queue: name, workerId: id }))
            )
            expect(error).toMatchObject({ _tag: "WorkerIdInUse", workerId: id })
          })
        )
        // A crashed incarnation: registered long ago, never heartbeating since, holding a lease.
        yield* sql`INSERT INTO keel_queue_workers (id, queue_id, host, pid, started_at, heartbeat_at, timeout_ms)
          VALUES (${id}, NULL, 'gone', 1, 0, 0, 1000)`
        yield* queues.send(name, "held by the dead")
        yield* queues.read(name, { workerId: id, visibilityTimeout: "1 hour" })
        yield* Effect.scoped(
          Effect.gen(function* () {
            yield* queues.registerWorker({ queue: name, workerId: id })
            expect((yield* queues.read(name)).length).toBe(1)
          })
        )
      })
    )

    it.effect("maintenance releases the leases of a worker whose heartbeat stopped, and deregisters it", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const sql = yield* SqlClient.SqlClient
        const name = uniqueName("stale")
        yield* queues.createQueue(name)
        yield* queues.sendBatch(name, [{ payload: 1 }, { payload: 2 }])
        const id = `crashed-${name}`
        yield* sql`INSERT INTO keel_queue_workers (id, queue_id, host, pid, started_at, heartbeat_at, timeout_ms)
          VALUES (${id}, NULL, 'gone', 1, 0, 0, 1000)`
        const leased = yield* queues.read(name, { qty: 2, workerId: id, visibilityTimeout: "1 hour" })
        expect(leased.length).toBe(2)
        const report = yield* queues.maintain
        expect(report.staleWorkers).toContain(id)
        expect(report.releasedLeases).toBeGreaterThanOrEqual(2)
        expect((yield* queues.read(name, { qty: 2 })).length).toBe(2)
        const [first] = leased
        if (first === undefined) return yield* Effect.die("no message")
        expect((yield* Effect.flip(queues.archive(name, first)))._tag).toBe("LeaseLost")
      })
    )

    it.effect("consume processes every message once, archives it, and deregisters at scope close", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const name = uniqueName("consume")
        yield* queues.createQueue(name)
        const ids = yield* queues.sendBatch(
          name,
          Array.from({ length: 30 }, (_, i) => ({ payload: i }))
        )
        const seen = yield* Ref.make<ReadonlyArray<number>>([])
        const done = yield* Deferred.make<void>()
        const stats = yield* Effect.scoped(
          Effect.gen(function* () {
            const consumer = yield* queues.consume(
              name,
              (message) =>
                Effect.gen(function* () {
                  const all = yield* Ref.updateAndGet(seen, (s) => [...s, message.id])
                  if (all.length === ids.length) yield* Deferred.succeed(done, undefined)
                }),
              { ...quick, concurrency: 4 }
            )
            yield* Deferred.await(done)
            yield* eventually(Effect.map(archiveRows(name), (n) => n === ids.length))
            expect((yield* queues.listWorkers(name)).map((w) => w.id)).toEqual([consumer.workerId])
            return consumer.stats
          })
        )
        expect([...(yield* Ref.get(seen))].sort((a, b) => a - b)).toEqual([...ids].sort((a, b) => a - b))
        expect(yield* stats).toMatchObject({ processed: 30, failed: 0, leaseLost: 0 })
        expect(yield* messageRows(name)).toBe(0)
        expect(yield* queues.listWorkers(name)).toEqual([])
      })
    )

    it.effect(
      "a failing handler's message is released with growing backoff, then dead-lettered with its error",
      () =>
        Effect.gen(function* () {
          const queues = yield* Queue.Queues
          const name = uniqueName("failing")
          yield* queues.createQueue(name, { maxDeliveries: 3 })
          const id = yield* queues.send(name, "poison")
          const attempts = yield* Ref.make(0)
          const events = yield* Ref.make<ReadonlyArray<Consumer.ConsumerEvent>>([])
          const dead = yield* Deferred.make<void>()
          yield* Effect.scoped(
            Effect.gen(function* () {
              yield* queues.consume(
                name,
                () =>
                  Effect.zipRight(
                    Ref.update(attempts, (n) => n + 1),
                    Effect.fail(new Error("card declined"))
                  ),
                {
                  ...quick,
                  backoff: { initial: "40 millis", max: "1 second" },
                  onEvent: (event) =>
                    Effect.zipRight(
                      Ref.update(events, (all) => [...all, event]),
                      event._tag === "Failed" && event.outcome === "dead"
                        ? Deferred.succeed(dead, undefined)
                        : Effect.void
                    )
                }
              )
              yield* Deferred.await(dead)
            })
          )
          expect(yield* Ref.get(attempts)).toBe(3)
          const failures = (yield* Ref.get(events)).flatMap((e) => (e._tag === "Failed" ? [e] : []))
          expect(failures.map((f) => f.outcome)).toEqual(["released", "released", "dead"])
          const [first, second] = failures
          expect(second?.delay ?? 0).toBeGreaterThan(first?.delay ?? 0)
          const [letter] = yield* queues.deadLetters(name)
          expect(letter?.id).toBe(id)
          expect(letter?.lastError).toBe("Error: card declined")
          expect(letter?.deliveries).toBe(3)
        })
    )

    it.effect("an idle consumer is woken by a send, not by polling", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const name = uniqueName("wakeup")
        yield* queues.createQueue(name)
        const handled = yield* Deferred.make<number>()
        yield* Effect.scoped(
          Effect.gen(function* () {
            yield* queues.consume(name, (message) => Deferred.succeed(handled, message.id), {
              ...quick,
              pollInterval: "1 hour"
            })
            // Let the consumer finish its first (empty) read and wait for a signal.
            yield* Effect.sleep("500 millis")
            const sentAt = Date.now()
            const id = yield* queues.send(name, "wake up")
            expect(yield* Deferred.await(handled)).toBe(id)
            expect(Date.now() - sentAt).toBeLessThan(5_000)
          })
        )
      })
    )

    it.effect(
      "a handler that outlives the visibility timeout keeps its lease: nobody else gets the message",
      () =>
        Effect.gen(function* () {
          const queues = yield* Queue.Queues
          const name = uniqueName("long")
          yield* queues.createQueue(name)
          yield* queues.send(name, "slow")
          const started = yield* Deferred.make<void>()
          const finish = yield* Deferred.make<void>()
          const runs = yield* Ref.make(0)
          const events = yield* Ref.make<ReadonlyArray<string>>([])
          yield* Effect.scoped(
            Effect.gen(function* () {
              yield* queues.consume(
                name,
                () =>
                  Effect.gen(function* () {
                    yield* Ref.update(runs, (n) => n + 1)
                    yield* Deferred.succeed(started, undefined)
                    yield* Deferred.await(finish)
                  }),
                {
                  ...quick,
                  visibilityTimeout: "400 millis",
                  onEvent: (event) => Ref.update(events, (all) => [...all, event._tag])
                }
              )
              yield* Deferred.await(started)
              yield* eventually(
                Effect.map(Ref.get(events), (all) => all.filter((e) => e === "Extended").length >= 3)
              )
              expect(yield* queues.read(name)).toEqual([])
              yield* Deferred.succeed(finish, undefined)
              yield* eventually(Effect.map(archiveRows(name), (n) => n === 1))
            })
          )
          expect(yield* Ref.get(runs)).toBe(1)
          expect((yield* queues.listArchive(name))[0]?.deliveries).toBe(1)
        })
    )

    it.effect("shutdown lets a quick handler finish and releases the message of one that does not", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const name = uniqueName("shutdown")
        yield* queues.createQueue(name)
        const [quickId, stuckId] = yield* queues.sendBatch(name, [{ payload: "quick" }, { payload: "stuck" }])
        const bothStarted = yield* Ref.make(0)
        const started = yield* Deferred.make<void>()
        const stats = yield* Deferred.make<Effect.Effect<Consumer.ConsumerStats>>()
        // The usual way a consumer stops: the fiber that owns its scope is interrupted (SIGTERM).
        const running = yield* Effect.fork(
          Effect.scoped(
            Effect.gen(function* () {
              const consumer = yield* queues.consume(
                name,
                (message) =>
                  Effect.gen(function* () {
                    if ((yield* Ref.updateAndGet(bothStarted, (n) => n + 1)) === 2) {
                      yield* Deferred.succeed(started, undefined)
                    }
                    if (message.payload === "quick") yield* Effect.sleep("300 millis")
                    else yield* Effect.never
                  }),
                { ...quick, concurrency: 2, shutdownTimeout: "1500 millis" }
              )
              yield* Deferred.succeed(stats, consumer.stats)
              return yield* Effect.never
            })
          )
        )
        yield* Deferred.await(started)
        yield* Fiber.interrupt(running)
        const consumer = { stats: yield* Deferred.await(stats) }
        expect(yield* consumer.stats).toMatchObject({ processed: 1, released: 1 })
        expect((yield* queues.listArchive(name)).map((m) => m.id)).toEqual([quickId])
        const [again] = yield* queues.read(name)
        expect(again?.id).toBe(stuckId)
        expect(yield* queues.listWorkers(name)).toEqual([])
      })
    )

    it.effect("a handler whose lease is lost is interrupted and its message is not acknowledged", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const name = uniqueName("lost")
        yield* queues.createQueue(name)
        yield* queues.send(name, "contended")
        const leased = yield* Deferred.make<Schemas.Leased>()
        const interrupted = yield* Deferred.make<void>()
        yield* Effect.scoped(
          Effect.gen(function* () {
            const consumer = yield* queues.consume(
              name,
              (message) =>
                Effect.zipRight(Deferred.succeed(leased, message), Effect.never).pipe(
                  Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined))
                ),
              { ...quick, visibilityTimeout: "600 millis" }
            )
            const message = yield* Deferred.await(leased)
            // Someone with the lease (an operator, another process's maintenance) takes it away.
            yield* queues.release(name, message, { delay: "1 hour" })
            yield* Deferred.await(interrupted)
            yield* eventually(Effect.map(consumer.stats, (s) => s.leaseLost === 1))
          })
        )
        expect(yield* archiveRows(name)).toBe(0)
        expect((yield* queues.metrics(name)).delayed).toBe(1)
      })
    )

    it.effect(
      "a handler that exceeds handlerTimeout fails and its message is released with the timeout",
      () =>
        Effect.gen(function* () {
          const queues = yield* Queue.Queues
          const name = uniqueName("timeout")
          yield* queues.createQueue(name)
          yield* queues.send(name, "hangs")
          const failed = yield* Deferred.make<string>()
          yield* Effect.scoped(
            Effect.gen(function* () {
              yield* queues.consume(name, () => Effect.never, {
                ...quick,
                handlerTimeout: "100 millis",
                backoff: { initial: "1 hour", max: "1 hour" },
                onEvent: (event) =>
                  event._tag === "Failed" ? Deferred.succeed(failed, event.error) : Effect.void
              })
              expect(yield* Deferred.await(failed)).toContain("TimeoutException")
            })
          )
          expect((yield* queues.metrics(name)).delayed).toBe(1)
        })
    )
  })
})
