/**
 * What the cursor store returns, as Schemas: they cross the CLI and HTTP boundaries. Positions are
 * `Position.Any`: the canonical text of the namespace's kind (`PositionKind.ts`).
 */
import * as Schema from "effect/Schema"
import * as Peer from "./Peer.js"
import * as Position from "./Position.js"
import * as PositionKind from "./PositionKind.js"

/** One cursor as `getAll` reports it: the latest known position, what is stored, and whether more is pending. */
export const Cursor = Schema.Struct({
  peer: Peer.Peer,
  /** The latest position known: the greater of this process's memory and the database. */
  position: Position.Any,
  /** The position in the database, or null when none is stored yet. */
  stored: Schema.NullOr(Position.Any),
  /** When the stored position last advanced (epoch milliseconds), or null. */
  updatedAt: Schema.NullOr(Schema.Number),
  /** True when memory holds a position newer than the stored one, waiting for a flush. */
  pending: Schema.Boolean
})

/** One cursor as `getAll` reports it. */
export type Cursor = typeof Cursor.Type

/**
 * What a `set` did: `advanced` (memory moved forward and the peer is dirty), `unchanged` (the
 * position equals the one held) or `stale` (older than the one held, or for a `json-map` not
 * after it: ignored and counted).
 */
export const SetOutcome = Schema.Literal("advanced", "unchanged", "stale")

/** What a `set` did. */
export type SetOutcome = typeof SetOutcome.Type

/** The result of a `set`: its outcome and the position now held for the peer. */
export const SetResult = Schema.Struct({
  peer: Peer.Peer,
  outcome: SetOutcome,
  /** The position held in memory after the call (the given one unless it was stale). */
  position: Position.Any
})

/** The result of a `set`. */
export type SetResult = typeof SetResult.Type

/** A cursor whose flushed position was not after the stored one: the write was ignored. */
export const StaleWrite = Schema.Struct({
  peer: Peer.Peer,
  /** The position this process tried to store. */
  position: Position.Any,
  /** The position already stored (by another process, or an earlier reset). */
  stored: Position.Any
})

/** A cursor whose flushed position was older than the stored one. */
export type StaleWrite = typeof StaleWrite.Type

/** The result of a `flush`. */
export const FlushResult = Schema.Struct({
  /** Dirty cursors this flush handled: persisted + already stored + stale. */
  flushed: Schema.Number,
  /** Cursors written: inserted, or advanced over an older stored position. */
  persisted: Schema.Number,
  /** Cursors whose position was older than the stored one: ignored, memory raised to the stored one. */
  stale: Schema.Array(StaleWrite)
})

/** The result of a `flush`. */
export type FlushResult = typeof FlushResult.Type

/** What `checkpoint` did: a WAL checkpoint on SQLite/libSQL, or nothing (with the reason). */
export const Checkpoint = Schema.Union(
  Schema.TaggedStruct("WalCheckpoint", {
    /** True when readers kept the checkpoint from completing; the WAL was not fully truncated. */
    busy: Schema.Boolean,
    /** The WAL's frames as SQLite reports them afterwards (0 once truncated; -1 without WAL). */
    walFrames: Schema.Number,
    /** The frames SQLite reports as checkpointed (0 once truncated; -1 without WAL). */
    checkpointedFrames: Schema.Number
  }),
  Schema.TaggedStruct("NoCheckpoint", { reason: Schema.String })
)

/** What `checkpoint` did. */
export type Checkpoint = typeof Checkpoint.Type

/** Counters of one store instance since it started (the `Metric`s aggregate every instance). */
export const Stats = Schema.Struct({
  namespace: Peer.Namespace,
  /** Cursors set in memory and not yet persisted. */
  dirty: Schema.Number,
  /** Flushes that committed (a flush with nothing dirty does not touch the database and is not counted). */
  flushes: Schema.Number,
  /** Flushes that failed after the retry policy; their cursors stayed dirty. */
  failedFlushes: Schema.Number,
  /** Cursors written by flushes. */
  rowsFlushed: Schema.Number,
  /** Flush transactions re-run after a transient failure. */
  retries: Schema.Number,
  /** `set` calls ignored because the position was older than the one held in memory. */
  staleSets: Schema.Number,
  /** Flushed cursors ignored because the database held a newer position. */
  staleFlushes: Schema.Number,
  /** How long the last flush took, in milliseconds, or null before the first. */
  lastFlushMillis: Schema.NullOr(Schema.Number)
})

/** Counters of one store instance. */
export type Stats = typeof Stats.Type

/** How far one cursor is behind the head of its stream. */
export const Lag = Schema.Struct({
  peer: Peer.Peer,
  /** The latest known position, or null when the peer has no cursor. */
  position: Schema.NullOr(Position.Any),
  /** The head the caller gave for this peer. */
  head: Position.Any,
  /** True when the head is after the position (for a `json-map`: some key of the head is ahead). */
  behind: Schema.Boolean,
  /** `head − position` in `unit` (a decimal integer, never negative), or null when the kind has no distance. */
  distance: Schema.NullOr(Schema.String),
  unit: PositionKind.LagUnit
})

/** How far one cursor is behind the head. */
export type Lag = typeof Lag.Type

/**
 * Where a reset moves cursors (Kafka's `--reset-offsets`): the start (`Earliest`), the head the
 * caller gives (`Latest`), a position, the first position at or after a time (stream ids only),
 * or `Shift` by `by` (offsets and LSNs; negative moves back, never below zero).
 */
export const ResetTarget = Schema.Union(
  Schema.TaggedStruct("Earliest", {}),
  Schema.TaggedStruct("Latest", { head: Schema.String }),
  Schema.TaggedStruct("Position", { position: Schema.String }),
  Schema.TaggedStruct("Time", { at: Schema.Number }),
  Schema.TaggedStruct("Shift", { by: Schema.BigInt })
)

/** Where a reset moves cursors. */
export type ResetTarget = typeof ResetTarget.Type

/** One cursor a reset moves: from where (null: it had none) to where. */
export const ResetChange = Schema.Struct({
  peer: Peer.Peer,
  from: Schema.NullOr(Position.Any),
  to: Position.Any
})

/** One cursor a reset moves. */
export type ResetChange = typeof ResetChange.Type

/** The result of a reset: what moved (or would move, on a dry run). */
export const ResetResult = Schema.Struct({
  dryRun: Schema.Boolean,
  changes: Schema.Array(ResetChange)
})

/** The result of a reset. */
export type ResetResult = typeof ResetResult.Type

/** One exported cursor. */
export const ExportedCursor = Schema.Struct({
  peer: Schema.String,
  position: Schema.String,
  /** When it last advanced (epoch milliseconds); informative, not imported. */
  updatedAt: Schema.optional(Schema.NullOr(Schema.Number))
})

/** One exported cursor. */
export type ExportedCursor = typeof ExportedCursor.Type

/** A namespace's cursors as `export` writes them and `import` reads them back. */
export const Export = Schema.Struct({
  namespace: Schema.String,
  kind: PositionKind.Kind,
  cursors: Schema.Array(ExportedCursor)
})

/** A namespace's exported cursors. */
export type Export = typeof Export.Type

/**
 * How `import` writes: `advance` only moves cursors forward (a stale import line is skipped and
 * reported); `overwrite` sets every cursor to the imported position, even backwards.
 */
export const ImportMode = Schema.Literal("advance", "overwrite")

/** How `import` writes. */
export type ImportMode = typeof ImportMode.Type

/** The result of an import (or of its dry run). */
export const ImportResult = Schema.Struct({
  dryRun: Schema.Boolean,
  /** Cursors the import wrote (or would write). */
  written: Schema.Number,
  /** Peers skipped in `advance` mode because their stored position was not behind the imported one. */
  skipped: Schema.Array(Peer.Peer)
})

/** The result of an import. */
export type ImportResult = typeof ImportResult.Type

/** The result of an idle expiry: the peers whose cursors were (or, on a dry run, would be) deleted. */
export const ExpireResult = Schema.Struct({
  dryRun: Schema.Boolean,
  expired: Schema.Array(Peer.Peer)
})

/** The result of an idle expiry. */
export type ExpireResult = typeof ExpireResult.Type
