/**
 * A release racing a refresh or a move of the same reservation. A release of one path takes no
 * allocation lock, only that path's lock (PostgreSQL), which the allocation takes too; so the two
 * still happen one after the other: either the release removes what the refresh or move left, or
 * the allocation finds nothing and creates the reservation again. What must never happen: a
 * refresh reporting a reservation the release has just deleted, or a release finding nothing
 * while a move re-inserts the row elsewhere. On SQLite and PGlite one writer at a time makes it
 * trivially so; the rounds there check the same outcomes.
 */
import { expect, layer } from "@effect/vitest"
import { Reservation } from "@keel/reservation"
import { TestDatabase } from "@keel/testkit"
import { DateTime, Effect, Either } from "effect"
import { freshDirectory, rangesFrom, layer as registryLayer } from "./support/ReservationTest.js"

const rounds = 150

TestDatabase.describeEach("Reservation release racing a refresh", (kind) => {
  const freshRange = rangesFrom(16_500)

  layer(registryLayer(kind), { timeout: 180_000, excludeTestServices: true })((it) => {
    it.effect("a refresh and a release of one reservation at once are linearizable, round after round", () =>
      Effect.gen(function* () {
        const registry = yield* Reservation.Reservations
        const range = freshRange(4)
        const orders = { releaseLast: 0, refreshLast: 0 }
        for (let round = 0; round < rounds; round++) {
          const dir = yield* freshDirectory(`race-${round}`)
          const request = { path: dir, cwd: dir, tag: "web", range, occupancy: { enabled: false } }
          const first = yield* registry.reserve(request)
          expect(first.outcome).toBe("created")
          // A later millisecond, so a refresh is told apart from the creation by its lastUsedAt.
          yield* Effect.sleep("2 millis")
          const [refreshed, released] = yield* Effect.all(
            [registry.reserve(request), registry.release({ path: dir, cwd: dir, tag: "web" })],
            { concurrency: 2 }
          )
          // The reservation existed before both began and a refresh never removes one: the
          // release always finds a reservation to remove.
          expect(released.released).toHaveLength(1)
          const [removed] = released.released
          const stored = yield* Effect.either(registry.show({ path: dir, tag: "web" }))
          if (Either.isRight(stored)) {
            // The release came first: the refresh found nothing and created it again.
            orders.refreshLast++
            expect(refreshed.outcome).toBe("created")
            expect(stored.right).toEqual(refreshed.reservation)
            expect(removed?.lastUsedAt).toEqual(first.reservation.lastUsedAt)
            yield* registry.release({ path: dir, cwd: dir, tag: "web" })
          } else {
            // The refresh came first: the release removed exactly what the refresh left.
            orders.releaseLast++
            expect(stored.left._tag).toBe("ReservationNotFound")
            expect(refreshed.outcome).toBe("refreshed")
            expect(removed?.port).toBe(refreshed.reservation.port)
            expect(DateTime.toEpochMillis(removed?.lastUsedAt ?? DateTime.unsafeMake(0))).toBe(
              DateTime.toEpochMillis(refreshed.reservation.lastUsedAt)
            )
          }
        }
        yield* Effect.logInfo(
          `${kind}: release last ${orders.releaseLast}, refresh last ${orders.refreshLast}`
        )
      })
    )

    it.effect("a move and a release of one reservation at once are linearizable, round after round", () =>
      Effect.gen(function* () {
        const registry = yield* Reservation.Reservations
        const range = freshRange(4)
        const orders = { releaseLast: 0, moveLast: 0 }
        for (let round = 0; round < rounds; round++) {
          const dir = yield* freshDirectory(`move-${round}`)
          const base = { path: dir, cwd: dir, tag: "web", range, occupancy: { enabled: false } }
          const first = yield* registry.reserve({ ...base, preferred: range.min })
          expect(first.reservation.port).toBe(range.min)
          const [moved, released] = yield* Effect.all(
            [
              registry.reserve({ ...base, preferred: range.min + 2, overwrite: true }),
              registry.release({ path: dir, cwd: dir, tag: "web" })
            ],
            { concurrency: 2 }
          )
          expect(moved.reservation.port).toBe(range.min + 2)
          // The reservation existed throughout (a move never leaves it absent): the release removes one.
          expect(released.released.map((row) => row.port)).toHaveLength(1)
          const [removed] = released.released
          const stored = yield* Effect.either(registry.show({ path: dir, tag: "web" }))
          if (Either.isRight(stored)) {
            // The release came first: the move found nothing and created it at the preferred port.
            orders.moveLast++
            expect(moved.outcome).toBe("created")
            expect(removed?.port).toBe(range.min)
            yield* registry.release({ path: dir, cwd: dir, tag: "web" })
          } else {
            // The move came first: the release removed the moved reservation.
            orders.releaseLast++
            expect(moved.outcome).toBe("moved")
            expect(removed?.port).toBe(range.min + 2)
          }
        }
        yield* Effect.logInfo(`${kind}: release last ${orders.releaseLast}, move last ${orders.moveLast}`)
      })
    )
  })
})
