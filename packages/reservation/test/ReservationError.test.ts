import { describe, expect, it } from "@effect/vitest"
import { ReservationError, Schemas } from "@keel/reservation"
import { DbError, Transaction } from "@keel/sql"
import { DateTime, Schema } from "effect"

/** Encodes to JSON text and back, as an error or result crossing the HTTP boundary would. */
const roundTrip = <A, I>(schema: Schema.Schema<A, I>, value: A): A =>
  Schema.decodeUnknownSync(schema)(JSON.parse(JSON.stringify(Schema.encodeSync(schema)(value))))

describe("ReservationError", () => {
  it("every error survives JSON with its tag, fields and message", () => {
    const check = <A extends { readonly _tag: string; readonly message: string }, I>(
      schema: Schema.Schema<A, I>,
      error: A
    ): A => {
      const back = roundTrip(schema, error)
      expect(back._tag).toBe(error._tag)
      expect(back.message).toBe(error.message)
      return error
    }
    const errors = [
      check(
        ReservationError.NoPortAvailable,
        new ReservationError.NoPortAvailable({
          path: "/p",
          tag: "web",
          range: { min: 5000, max: 5010 },
          requested: 1
        })
      ),
      check(
        ReservationError.InvalidPort,
        new ReservationError.InvalidPort({ field: "preferred", value: "70000" })
      ),
      check(
        ReservationError.InvalidRange,
        new ReservationError.InvalidRange({ field: "range", min: 7000, max: 5000 })
      ),
      check(
        ReservationError.InvalidTag,
        new ReservationError.InvalidTag({
          field: "tag",
          tag: "a\nb",
          reason: "it contains control characters"
        })
      ),
      check(
        ReservationError.InvalidPath,
        new ReservationError.InvalidPath({ field: "path", path: "rel", problem: "relative" })
      ),
      check(ReservationError.UnrelatedPath, new ReservationError.UnrelatedPath({ path: "/a", cwd: "/b" })),
      check(
        ReservationError.PreferredPortReserved,
        new ReservationError.PreferredPortReserved({ port: 5000, holderPath: "/a", holderTag: null })
      ),
      check(
        ReservationError.StickyFieldChanged,
        new ReservationError.StickyFieldChanged({
          path: "/a",
          tag: null,
          field: "project",
          current: "x",
          requested: "y"
        })
      ),
      check(
        ReservationError.InvalidConfig,
        new ReservationError.InvalidConfig({ source: "f.json", field: "exclude[1]", reason: "bad" })
      ),
      check(ReservationError.ReservationNotFound, new ReservationError.ReservationNotFound({ port: 5000 })),
      check(
        ReservationError.ReservationStoreError,
        new ReservationError.ReservationStoreError({
          operation: "reserve",
          cause: new DbError.Busy({ code: "SQLITE_BUSY", message: "database is locked" })
        })
      ),
      check(
        ReservationError.ReservationStoreError,
        new ReservationError.ReservationStoreError({
          operation: "release",
          cause: new Transaction.CommitOutcomeUnknown({
            reason: new DbError.ConnectionLost({ code: "ECONNRESET", message: "gone" })
          })
        })
      )
    ]
    expect(errors[0]?.message).toBe(
      "no free port in 5000-5010 for /p [web]: all 11 ports are reserved, excluded or in use (needed 1); widen the range, release reservations or run cleanup"
    )
    expect(errors[3]?.message).toContain('"a\\nb"')
  })

  it("a reservation result survives JSON with its instants as ISO text", () => {
    const reserved: Schemas.Reserved = Schema.decodeUnknownSync(Schemas.Reserved)({
      outcome: "created",
      reservation: {
        path: "/p",
        tag: null,
        port: 5000,
        project: "keel",
        task: null,
        createdAt: "2026-01-02T03:04:05.006Z",
        lastUsedAt: "2026-01-02T03:04:05.006Z",
        expiresAt: null
      }
    })
    expect(Schema.encodeSync(Schemas.Reserved)(reserved).reservation.createdAt).toBe(
      "2026-01-02T03:04:05.006Z"
    )
    const back = roundTrip(Schemas.Reserved, reserved)
    expect(DateTime.toEpochMillis(back.reservation.createdAt)).toBe(Date.UTC(2026, 0, 2, 3, 4, 5, 6))
    expect(back).toEqual(reserved)
  })
})
