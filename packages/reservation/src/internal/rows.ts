/**
 * Stored rows as the registry's `Reservation`s: the one decoding path for rows a caller sees, and
 * the orders the registry reports them in.
 */
import * as DbError from "@keel/sql/DbError"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { ReservationStoreError } from "../ReservationError.js"
import { Stored, untagged } from "../ReservationStore.js"
import { Reservation } from "../Schemas.js"

const decodeReservation = Schema.decodeUnknownEither(Reservation)
const decodeStored = Schema.decodeUnknownEither(Schema.Array(Stored))

const isoOf = (millis: number): string => new Date(millis).toISOString()

/** A row that does not decode means the table holds what the schema forbids: a database failure. */
export const invalidRow = (message: string): DbError.DbError =>
  new DbError.DatabaseFailure({ code: "INVALID_ROW", message: `a stored reservation is invalid: ${message}` })

/** One stored row as a `Reservation`, or the database failure its content amounts to. */
export const toReservation = (row: Stored): Either.Either<Reservation, DbError.DbError> =>
  Either.mapLeft(
    decodeReservation({
      path: row.path,
      tag: row.tag === untagged ? null : row.tag,
      port: Number(row.port),
      project: row.project,
      task: row.task,
      createdAt: isoOf(Number(row.created_at)),
      lastUsedAt: isoOf(Number(row.last_used_at)),
      expiresAt: row.expires_at === null ? null : isoOf(Number(row.expires_at))
    }),
    (error) => invalidRow(error.message)
  )

/** Every row as a `Reservation`; the first invalid one fails them all. */
export const toReservations = (
  rows: ReadonlyArray<Stored>
): Either.Either<ReadonlyArray<Reservation>, DbError.DbError> => {
  const out: Array<Reservation> = []
  for (const row of rows) {
    const decoded = toReservation(row)
    if (Either.isLeft(decoded)) return Either.left(decoded.left)
    out.push(decoded.right)
  }
  return Either.right(out)
}

/** Rows read by a statement, checked against the table's shape. */
export const storedRows = (raw: unknown): Either.Either<ReadonlyArray<Stored>, DbError.DbError> =>
  Either.mapLeft(decodeStored(raw), (error) => invalidRow(error.message))

const compareText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

/** Orders reservations by path, then tag (the untagged one first), by code unit as `list` does. */
export const byKey = (a: Reservation, b: Reservation): number =>
  compareText(a.path, b.path) || compareText(a.tag ?? "", b.tag ?? "")

/** True when the row's ttl has run out at `now`. */
export const isExpired = (row: { readonly expires_at: number | null }, now: number): boolean =>
  row.expires_at !== null && row.expires_at <= now

/** One row as a `Reservation`; an invalid row is a `ReservationStoreError` of `operation`. */
export const decodedOr = (
  operation: string,
  row: Stored
): Effect.Effect<Reservation, ReservationStoreError> => {
  const decoded = toReservation(row)
  return Either.isRight(decoded)
    ? Effect.succeed(decoded.right)
    : Effect.fail(new ReservationStoreError({ operation, cause: decoded.left }))
}
