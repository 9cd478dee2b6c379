/**
 * DESIGN.md rule 1 for the registry: an allocation transaction that fails in a way that proves it
 * rolled back is re-run whole, and nothing is duplicated; a COMMIT whose outcome is unknown is not
 * re-run but reported typed — and since reserving is idempotent per (path, tag), calling it again
 * returns the port that was (or was not) committed.
 */
import { expect, layer } from "@effect/vitest"
import { Reservation } from "@keel/reservation"
import { Backend, Retry } from "@keel/sql"
import { Faults, TestDatabase } from "@keel/testkit"
import { Duration, Effect } from "effect"
import { countInRange, faultyLayer, freshDirectory, rangesFrom } from "./support/ReservationTest.js"

/** A short retry policy, so that giving up is quick. */
const quick = Retry.policy({
  base: Duration.millis(1),
  factor: 2,
  maxDelay: Duration.millis(5),
  maxRetries: 5,
  maxElapsed: Duration.seconds(2)
})

TestDatabase.describeEach("Reservation under faults", (kind) => {
  const freshRange = rangesFrom(13000)

  layer(faultyLayer(kind), { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("a busy BEGIN is waited out: the allocation runs once and reserves one port", () =>
      Effect.gen(function* () {
        const registry = yield* Reservation.Reservations
        const faults = yield* Faults.Faults
        const dir = yield* freshDirectory("busy-begin")
        const range = freshRange(3)
        yield* faults.clear
        yield* faults.inject({ match: /^BEGIN/, timing: "before", error: "busy", times: 3 })
        const reserved = yield* registry.reserve({ path: dir, cwd: dir, range })
        expect(yield* faults.fired).toBe(3)
        expect(reserved).toMatchObject({ outcome: "created", reservation: { port: range.min } })
        expect(yield* countInRange(range)).toBe(1)
      })
    )

    it.effect(
      "a lock error after the INSERT ran rolls the allocation back; the re-run leaves one reservation",
      () =>
        Effect.gen(function* () {
          const registry = yield* Reservation.Reservations
          const faults = yield* Faults.Faults
          const dir = yield* freshDirectory("post-write")
          const range = freshRange(3)
          yield* faults.clear
          yield* faults.inject({
            match: /^INSERT INTO "?keel_reservations/,
            timing: "after",
            error: "locked",
            times: 2
          })
          const reserved = yield* registry.reserve({ path: dir, cwd: dir, range, tag: "web" })
          expect(yield* faults.fired).toBe(2)
          expect(reserved).toMatchObject({ outcome: "created", reservation: { port: range.min } })
          expect(yield* countInRange(range)).toBe(1)
          const group = yield* registry.reserveGroup({
            path: dir,
            cwd: dir,
            range,
            services: [{ tag: "web" }, { tag: "api" }, { tag: "db" }]
          })
          expect(group.reservations.map((r) => r.reservation.port)).toEqual([
            range.min,
            range.min + 1,
            range.min + 2
          ])
        })
    )

    it.effect(
      "a COMMIT with an unknown outcome is a typed store error; reserving again returns the committed port",
      () =>
        Effect.gen(function* () {
          const registry = yield* Reservation.Reservations
          const faults = yield* Faults.Faults
          const backend = yield* Backend.Backend
          const dir = yield* freshDirectory("commit-unknown")
          const range = freshRange(3)
          yield* faults.clear
          yield* faults.inject(
            backend.dialect === "sqlite"
              ? { match: /^COMMIT/, timing: "after", error: "busy" }
              : { match: /^COMMIT/, timing: "after", error: "connection", breakConnection: true }
          )
          const error = yield* Effect.flip(registry.reserve({ path: dir, cwd: dir, range, tag: "unknown" }))
          expect(error).toMatchObject({ _tag: "ReservationStoreError", operation: "reserve" })
          expect(error._tag === "ReservationStoreError" && error.cause._tag).toBe("CommitOutcomeUnknown")
          const begins = (yield* faults.statements).filter((statement) => statement.startsWith("BEGIN"))
          expect(begins.length).toBe(1)
          const again = yield* registry.reserve({ path: dir, cwd: dir, range, tag: "unknown" })
          expect(again).toMatchObject({ outcome: "refreshed", reservation: { port: range.min } })
          expect(yield* countInRange(range)).toBe(1)
        })
    )

    it.effect(
      "a database that stays busy ends in a typed ReservationStoreError and writes nothing",
      () =>
        Effect.gen(function* () {
          const registry = yield* Reservation.Reservations
          const faults = yield* Faults.Faults
          const dir = yield* freshDirectory("always-busy")
          const range = freshRange(3)
          yield* faults.clear
          yield* faults.inject({
            match: /^INSERT INTO "?keel_reservations/,
            timing: "after",
            error: "busy",
            times: 1000
          })
          const error = yield* Effect.flip(registry.reserve({ path: dir, cwd: dir, range })).pipe(
            Retry.withPolicy(quick)
          )
          const inserts = (yield* faults.statements).filter((statement) =>
            /^INSERT INTO "?keel_reservations/.test(statement)
          )
          yield* faults.clear
          expect(inserts.length).toBe(6)
          expect(error._tag).toBe("ReservationStoreError")
          expect(error.message).toContain("reserve")
          expect(yield* countInRange(range)).toBe(0)
        }),
      60_000
    )
  })
})
