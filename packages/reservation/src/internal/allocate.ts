/**
 * Running an allocation: the store's transaction, given what it may need to ask outside the
 * database — whether a port is occupied (a probe binds it, so the store asks only while it holds
 * the allocation lock: two processes probing one port at once would each see the other's probe)
 * and whether a path exists (pruning on exhaustion) — and its rows as the caller's `Reserved`.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type * as Occupancy from "../Occupancy.js"
import type * as ReservationConfig from "../ReservationConfig.js"
import { ReservationStoreError } from "../ReservationError.js"
import type { Allocation, Store } from "../ReservationStore.js"
import type { Reserved } from "../Schemas.js"
import * as Paths from "./paths.js"
import * as Rows from "./rows.js"

/** Allocates, probing occupancy as the store asks; the reservations in request order. */
export const run = (
  store: Store,
  occupancy: Occupancy.Service,
  settings: ReservationConfig.OccupancySettings,
  allocation: Allocation
) =>
  Effect.gen(function* () {
    const probe = { hosts: settings.hosts, timeout: settings.timeout, protocols: settings.protocols }
    const fs = yield* FileSystem.FileSystem
    const now = yield* Clock.currentTimeMillis
    const written = yield* store.allocate(
      allocation,
      {
        isOccupied: (port) => occupancy.isOccupied(port, probe),
        exists: (path) => Effect.provideService(Paths.exists(path), FileSystem.FileSystem, fs)
      },
      now
    )
    const reserved: Array<Reserved> = []
    for (const entry of written) {
      const reservation = Rows.toReservation(entry.row)
      if (reservation._tag === "Left") {
        return yield* new ReservationStoreError({ operation: allocation.operation, cause: reservation.left })
      }
      reserved.push({ reservation: reservation.right, outcome: entry.outcome })
    }
    return reserved
  })
