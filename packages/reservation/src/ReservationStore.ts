/**
 * The registry's storage seam: one method per statement-level operation, over typed rows. The
 * semantics (validation, which reservations cleanup removes, probing occupancy between attempts)
 * live in `internal/`; `SqlReservationStore.ts` is the SQL. Every write the store makes is one
 * transaction that reads, decides and writes under the allocation lock.
 */

import type { Effect } from "effect"
import * as Context from "effect/Context"
import * as Schema from "effect/Schema"
import type * as Allocator from "./Allocator.js"
import type { Port, PortRange } from "./Port.js"
import type {
  MigrationConflict,
  NoPortAvailable,
  PreferredPortReserved,
  ReservationStoreError,
  StickyFieldChanged
} from "./ReservationError.js"
import type { Label, Outcome, Reservation, ReservationPath } from "./Schemas.js"

/** The untagged reservation is stored with tag `''` (see the migration). */
export const untagged = ""

/** A row of `keel_reservations` as every backend returns it (timestamps in epoch milliseconds). */
export const Stored = Schema.Struct({
  path: Schema.String,
  tag: Schema.String,
  port: Schema.Number,
  project: Schema.NullOr(Schema.String),
  task: Schema.NullOr(Schema.String),
  created_at: Schema.Number,
  last_used_at: Schema.Number,
  ttl_ms: Schema.NullOr(Schema.Number),
  expires_at: Schema.NullOr(Schema.Number)
})

/** A row of `keel_reservations`. */
export type Stored = typeof Stored.Type

/** One validated service of an allocation. */
export interface Want {
  /** The stored tag (`''` when untagged). */
  readonly tag: string
  readonly preferred?: Port | undefined
  readonly offset?: number | undefined
}

/** A validated allocation: everything the transaction needs, nothing left to check. */
export interface Allocation {
  /** The service operation it serves, for errors (`reserve`, `reserveGroup`). */
  readonly operation: string
  readonly path: ReservationPath
  readonly wants: ReadonlyArray<Want>
  readonly range: PortRange
  readonly exclude: ReadonlyArray<PortRange>
  readonly checkOccupancy: boolean
  readonly base?: Port | undefined
  readonly project: Label | undefined
  readonly task: Label | undefined
  /**
   * Labels for the reservations this allocation creates where `project`/`task` is not given;
   * existing reservations keep theirs, and a guess is never a sticky change.
   */
  readonly guess: { readonly project: Label | undefined; readonly task: Label | undefined }
  readonly ttlMs: number | undefined
  readonly force: boolean
  /** Move an existing reservation to its different preferred port (`force` does too). */
  readonly move: boolean
  /** Which sticky labels this request may change (`force` changes both). */
  readonly allowProjectChange: boolean
  readonly allowTaskChange: boolean
  /** Decide and report, write nothing (the transaction is rolled back). */
  readonly dryRun: boolean
  /** On exhaustion: remove reservations unused for this many milliseconds, then choose again. */
  readonly expireUnusedMs: number | undefined
  /** On exhaustion: remove reservations whose directory is gone, then choose again. */
  readonly prune: boolean
}

/** What the caller learnt between attempts of one allocation. */
export interface Known {
  /** Occupancy probed so far: `true` occupied. */
  readonly probed: ReadonlyMap<number, boolean>
  /** After `CheckPaths`: the paths found missing (their reservations may be pruned on exhaustion). */
  readonly missing?: ReadonlySet<string> | undefined
}

/** How an allocation ended: the reservations, in request order, or ports to probe first. */
export type Allocated =
  | {
      readonly _tag: "Allocated"
      readonly reservations: ReadonlyArray<{ readonly row: Stored; readonly outcome: Outcome }>
    }
  | { readonly _tag: "Probe"; readonly ports: ReadonlyArray<Port> }
  /** The range is exhausted and pruning is asked for: which of these paths exist? Then call again. */
  | { readonly _tag: "CheckPaths"; readonly paths: ReadonlyArray<string> }

/** A validated `migrate`. */
export interface Migration {
  readonly from: string
  readonly to: string
  readonly recursive: boolean
  readonly overwrite: boolean
  readonly dryRun: boolean
}

/** What `migrate` moved (the rows as they were) and replaced. */
export interface MigrationResult {
  readonly moved: ReadonlyArray<{ readonly from: Stored; readonly to: Stored }>
  readonly replaced: ReadonlyArray<Stored>
}

/** A row an allocation wrote, and what it did. */
export interface Written {
  readonly row: Stored
  readonly outcome: Outcome
}

/** What an allocation asks the world outside the database. */
export interface Oracle {
  /** True when something listens on `port`. */
  readonly isOccupied: (port: Port) => Effect.Effect<boolean>
  /** True when something exists at `path` (pruning on exhaustion). */
  readonly exists: (path: string) => Effect.Effect<boolean>
}

/** Which rows a read or a release is about; every given field narrows. */
export interface Filter {
  readonly path?: string | undefined
  /** This path and everything below it (whole path segments). */
  readonly under?: string | undefined
  readonly tag?: string | undefined
  readonly project?: string | undefined
  readonly port?: number | undefined
}

/** The store. */
export interface Store {
  /**
   * One allocation transaction: read the key's reservations, check sticky labels, choose ports
   * (`Allocator.choose`, the lowest free port found by SQL), write. When no port of unknown
   * occupancy is needed it is one plan (on better-sqlite3 one synchronous driver step); otherwise
   * the transaction asks `oracle` under the lock, as ports come up, so that two processes never
   * probe a port at the same time (a probe binds the port: concurrent probes see each other).
   */
  readonly allocate: (
    allocation: Allocation,
    oracle: Oracle,
    now: number
  ) => Effect.Effect<
    ReadonlyArray<Written>,
    StickyFieldChanged | NoPortAvailable | PreferredPortReserved | ReservationStoreError
  >
  /** The reservations matching `filter`, by path then tag (code-unit order on every backend). */
  readonly find: (
    filter: Filter,
    operation: string
  ) => Effect.Effect<ReadonlyArray<Reservation>, ReservationStoreError>
  /** Deletes the reservations matching `filter` under the allocation lock; returns them. */
  readonly remove: (filter: Filter) => Effect.Effect<ReadonlyArray<Reservation>, ReservationStoreError>
  /**
   * Moves the reservations of `from` (and below it, when recursive) to `to` in one transaction
   * under the allocation lock; a destination key already held is `MigrationConflict` unless
   * `overwrite` (then it is replaced). A dry run decides and writes nothing.
   */
  readonly migrate: (
    migration: Migration
  ) => Effect.Effect<MigrationResult, MigrationConflict | ReservationStoreError>
  /** Every row, by port (cleanup's candidates). */
  readonly all: (operation: string) => Effect.Effect<ReadonlyArray<Stored>, ReservationStoreError>
  /**
   * Deletes each row still stored exactly as given (same key, port and last use) in one
   * transaction; returns the ones deleted. A reservation used again meanwhile is kept.
   */
  readonly removeUnchanged: (
    rows: ReadonlyArray<Stored>,
    operation: string
  ) => Effect.Effect<ReadonlyArray<Stored>, ReservationStoreError>
}

/** The store in context. */
export class ReservationStore extends Context.Tag("@keel/reservation/ReservationStore")<
  ReservationStore,
  Store
>() {}

/** The choice input an allocation gives `Allocator.choose`. */
export const choiceOf = (
  allocation: Allocation,
  placing: ReadonlyArray<Want>,
  probed: ReadonlyMap<number, boolean>
): Allocator.Choice => ({
  range: allocation.range,
  exclude: allocation.exclude,
  wants: placing.map((want) => ({ key: want.tag, preferred: want.preferred, offset: want.offset })),
  base: allocation.base,
  force: allocation.force || allocation.move,
  checkOccupancy: allocation.checkOccupancy,
  probed
})
