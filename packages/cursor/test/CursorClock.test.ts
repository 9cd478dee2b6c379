import * as SqlClient from "@effect/sql/SqlClient"
import { expect, it } from "@effect/vitest"
import { TestDatabase } from "@keel/testkit"
import { Duration, Effect, Option, TestClock } from "effect"
import { Cursor } from "../src/index.js"

// In a file of its own: a `layer(…, { excludeTestServices: true })` block anywhere in a file
// leaves that file's later top-level `it.scoped` tests without the TestClock (@effect/vitest 0.30).

const storedPosition = (namespace: string, peer: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{
      position: string
    }>`SELECT position FROM keel_cursors WHERE namespace = ${namespace} AND peer = ${peer}`
    return Option.fromNullable(rows[0]?.position)
  })

/**
 * Waits, in real time and bounded, until the background fiber has committed `n` flushes: the
 * TestClock starts the flush, but its database I/O completes on the real event loop.
 */
const awaitFlushes = (cursors: Cursor.Service, n: number): Effect.Effect<void, string> =>
  Effect.gen(function* () {
    for (let attempt = 0; attempt < 10_000; attempt++) {
      if ((yield* cursors.stats).flushes >= n) return
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 1)))
    }
    return yield* Effect.fail(`the background flush ${n} did not complete`)
  })

TestDatabase.describeEach("Cursor background flush", (kind) => {
  it.scoped(
    "the background fiber flushes dirty cursors every flushInterval and stays idle when nothing is dirty",
    () =>
      Effect.gen(function* () {
        const cursors = yield* Cursor.make({ namespace: "clock", flushInterval: Duration.seconds(10) })
        yield* cursors.set("p", "1-0")
        yield* TestClock.adjust(Duration.seconds(9))
        expect((yield* cursors.stats).flushes).toBe(0)
        expect(yield* storedPosition("clock", "p")).toEqual(Option.none())
        yield* TestClock.adjust(Duration.seconds(1))
        yield* awaitFlushes(cursors, 1)
        expect(yield* storedPosition("clock", "p")).toEqual(Option.some("1-0"))
        yield* cursors.set("p", "2-0")
        yield* TestClock.adjust(Duration.seconds(10))
        yield* awaitFlushes(cursors, 2)
        expect(yield* storedPosition("clock", "p")).toEqual(Option.some("2-0"))
        // Nothing dirty: the next ticks do not open a transaction.
        yield* TestClock.adjust(Duration.seconds(30))
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 50)))
        expect((yield* cursors.stats).flushes).toBe(2)
      }).pipe(Effect.provide(TestDatabase.layer(kind))),
    { timeout: 120_000 }
  )
})
