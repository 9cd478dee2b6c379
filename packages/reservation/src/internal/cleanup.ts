/**
 * Cleanup: which reservations are stale (past their ttl, their directory gone, unused for a
 * while) and their removal. Candidates are read, their directories checked outside any
 * transaction, and each is deleted in one transaction only if it is still stored exactly as read
 * (same port and last use): a reservation used again meanwhile is kept. A missing directory is
 * checked once more just before the removal, so one that came back is kept.
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import { ReservationStoreError } from "../ReservationError.js"
import type { Store, Stored } from "../ReservationStore.js"
import type { CleanupReason, CleanupReport, CleanupRequest } from "../Schemas.js"
import * as Paths from "./paths.js"
import * as Rows from "./rows.js"

/** A stale reservation and why it is stale. */
export interface Candidate {
  readonly row: Stored
  readonly reason: CleanupReason
}

/** The rules: which reasons apply, in order (expired, then unused, then a missing directory). */
export interface Rules {
  readonly expired: boolean
  readonly unusedForMs: number | undefined
  readonly missingPaths: boolean
}

/** The rows `rules` call stale at `now`, each with its reason. */
export const candidates = (
  rows: ReadonlyArray<Stored>,
  rules: Rules,
  now: number
): Effect.Effect<ReadonlyArray<Candidate>, never, FileSystem.FileSystem> =>
  Effect.gen(function* () {
    const existsByPath = new Map<string, boolean>()
    const out: Array<Candidate> = []
    for (const row of rows) {
      if (rules.expired && Rows.isExpired(row, now)) out.push({ row, reason: "expired" })
      else if (rules.unusedForMs !== undefined && row.last_used_at <= now - rules.unusedForMs) {
        out.push({ row, reason: "unused" })
      } else if (rules.missingPaths) {
        let exists = existsByPath.get(row.path)
        if (exists === undefined) {
          exists = yield* Paths.exists(row.path)
          existsByPath.set(row.path, exists)
        }
        if (!exists) out.push({ row, reason: "missing-path" })
      }
    }
    return out
  })

/** Removes the candidates still stale (unless a dry run); the report of what was (or would be) removed. */
export const remove = (
  store: Store,
  found: ReadonlyArray<Candidate>,
  request: CleanupRequest,
  operation: string
): Effect.Effect<CleanupReport, ReservationStoreError, FileSystem.FileSystem> =>
  Effect.gen(function* () {
    let removed: ReadonlyArray<Candidate> = found
    if (request.dryRun !== true) {
      const still = yield* Effect.filter(found, (candidate) =>
        candidate.reason === "missing-path"
          ? Effect.map(Paths.exists(candidate.row.path), (exists) => !exists)
          : Effect.succeed(true)
      )
      const deleted = yield* store.removeUnchanged(
        still.map((candidate) => candidate.row),
        operation
      )
      const gone = new Set(deleted)
      removed = still.filter((candidate) => gone.has(candidate.row))
    }
    const report: Array<CleanupReport["removed"][number]> = []
    for (const { row, reason } of removed) {
      const reservation = Rows.toReservation(row)
      if (reservation._tag === "Left")
        return yield* new ReservationStoreError({ operation, cause: reservation.left })
      report.push({ reservation: reservation.right, reason })
    }
    return { dryRun: request.dryRun === true, removed: report }
  })
