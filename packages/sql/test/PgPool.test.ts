import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, layer } from "@effect/vitest"
import { Transaction } from "@keel/sql"
import { Deferred, Duration, Effect, Fiber, Scope } from "effect"
import * as TestDatabase from "./support/TestDatabase.js"

/** Holds the pool's only connection in a transaction until the returned effect is run. */
const holdTheOnlyConnection = Effect.gen(function* () {
  const holding = yield* Deferred.make<void>()
  const release = yield* Deferred.make<void>()
  const holder = yield* Effect.fork(
    Transaction.immediate(Effect.zipRight(Deferred.succeed(holding, undefined), Deferred.await(release)))
  )
  yield* Deferred.await(holding)
  return Effect.zipRight(Deferred.succeed(release, undefined), Fiber.join(holder))
})

const timedOut = <A, E, R>(effect: Effect.Effect<A, E, R>, millis: number) =>
  Effect.either(
    effect.pipe(Effect.timeoutFail({ duration: Duration.millis(millis), onTimeout: () => "timeout" }))
  )

describe.skipIf(!TestDatabase.kinds.includes("postgres"))("PostgreSQL pool", () => {
  layer(TestDatabase.layer("postgres", { maxConnections: 1 }), {
    timeout: 60_000,
    excludeTestServices: true
  })((it) => {
    it.effect(
      "hazard: the stock sql-pg reserve leaks the pool connection when its waiter is interrupted",
      () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const releaseHolder = yield* holdTheOnlyConnection
          const waiter = yield* timedOut(Effect.scoped(sql.reserve), 100)
          expect(waiter._tag).toBe("Left")
          yield* releaseHolder
          // The connection handed to the interrupted waiter is never released: the pool is dry.
          const next = yield* timedOut(Effect.scoped(sql.reserve), 1_000)
          expect(next._tag).toBe("Left")
        })
    )
  })

  layer(TestDatabase.layer("postgres", { maxConnections: 1 }), {
    timeout: 60_000,
    excludeTestServices: true
  })((it) => {
    it.effect("a transaction waiting for a pool connection can be timed out without leaking it", () =>
      Effect.gen(function* () {
        const releaseHolder = yield* holdTheOnlyConnection
        const started = Date.now()
        const waiter = yield* timedOut(Transaction.immediate(Effect.void), 100)
        expect(waiter._tag).toBe("Left")
        expect(Date.now() - started).toBeLessThan(1_000)
        yield* releaseHolder
        for (let round = 0; round < 3; round++) {
          const next = yield* timedOut(Transaction.immediate(Effect.void), 5_000)
          expect(next._tag).toBe("Right")
        }
      })
    )

    it.effect("interrupting many waiters at once returns every connection to the pool", () =>
      Effect.gen(function* () {
        const releaseHolder = yield* holdTheOnlyConnection
        const scope = yield* Scope.make()
        const waiters = yield* Effect.forEach(
          Array.from({ length: 5 }, () => Transaction.immediate(Effect.void)),
          (waiter) => Effect.forkIn(waiter, scope)
        )
        yield* Effect.sleep(Duration.millis(50))
        yield* Effect.forEach(waiters, Fiber.interrupt, { discard: true })
        yield* releaseHolder
        const next = yield* timedOut(Transaction.immediate(Effect.void), 5_000)
        expect(next._tag).toBe("Right")
      })
    )
  })
})
