/**
 * The cursor store's storage seam: one method per statement-level operation, each atomic, with
 * typed rows. The semantics (`internal/*.ts`: memory, debounce, outcomes, metrics) run over it;
 * `SqlCursorStore` implements it on the four SQL backends.
 *
 * Every write is its own transaction unless it says otherwise (`writeInTransaction`), re-run under
 * the given retry policy only when its failure proves it rolled back. Every failure of the
 * database is a `CursorStoreError { operation, cause }`. A write given a `fence` first checks, in
 * its transaction, that the namespace's fence is still that epoch, and otherwise rolls back with
 * the cause `Fenced`. A write given `declare` first declares the namespace with that kind when it
 * has no declaration yet (and rolls back with `KindConflict` when it holds another): starting a
 * store writes nothing; its first write declares the namespace. Times are epoch milliseconds.
 */
import type { Retry } from "@keel/sql"
import type { Effect, Option } from "effect"
import * as Context from "effect/Context"
import type { CursorStoreError } from "./CursorError.js"
import type * as Peer from "./Peer.js"
import type * as Position from "./Position.js"
import type * as PositionKind from "./PositionKind.js"

/** A cursor as stored. */
export interface Stored {
  readonly peer: Peer.Peer
  readonly position: Position.Any
  /** The sort key (`PositionKind.Ordering.key`); empty for a `json-map`. */
  readonly key: string
  /** When the stored position last changed. */
  readonly updatedAt: number
}

/** A position to store for a peer. */
export interface Write {
  readonly peer: Peer.Peer
  readonly position: Position.Any
  readonly key: string
}

/** What a monotonic write did: the peers it moved forward, and the stored rows of the others. */
export interface Persisted {
  readonly advanced: ReadonlySet<string>
  /** The rows of the peers it did not move (equal, newer, or incomparable), as stored after it. */
  readonly others: ReadonlyArray<Stored>
}

/** A namespace as declared: its position kind and its current fence. */
export interface Declared {
  readonly kind: PositionKind.Kind
  readonly epoch: number
}

/** How a write is guarded. */
export interface Guard {
  /** The fence this writer holds; undefined: an unfenced writer (no check). */
  readonly fence: number | undefined
  /** The retry policy of the transaction (counted by the caller). */
  readonly policy: Retry.Policy
  /**
   * The kind to declare the namespace with first (persist, overwrite, writeInTransaction; a delete
   * or an expiry never declares); undefined: it is known to be declared.
   */
  readonly declare: PositionKind.Kind | undefined
}

/** What the result of `checkpoint` reports: a WAL checkpoint, or why none was needed. */
export type Checkpointed =
  | {
      readonly _tag: "WalCheckpoint"
      readonly busy: boolean
      readonly walFrames: number
      readonly checkpointedFrames: number
    }
  | { readonly _tag: "NoCheckpoint"; readonly reason: string }

/** The storage operations. */
export interface Storage {
  /** The namespace's declaration, if it has one; writes nothing. */
  readonly declaration: (namespace: string) => Effect.Effect<Option.Option<Declared>, CursorStoreError>
  /**
   * Declares `namespace` with `kind` if it has no declaration yet, then moves its fence to the next
   * epoch: every older holder is fenced off. The declaration as stored (its kind may differ from
   * `kind`: the caller refuses to start then).
   */
  readonly acquireFence: (
    namespace: string,
    kind: PositionKind.Kind,
    policy: Retry.Policy
  ) => Effect.Effect<Declared, CursorStoreError>
  /** The stored cursors of `peers` (every cursor of the namespace, ordered by peer, when undefined). */
  readonly read: (
    namespace: string,
    peers: ReadonlyArray<Peer.Peer> | undefined
  ) => Effect.Effect<ReadonlyArray<Stored>, CursorStoreError>
  /**
   * Writes `writes` monotonically in one transaction, one statement per chunk: a stored position is
   * replaced only by a later one (`rules.compare`). Peers it did not advance are read back.
   */
  readonly persist: (
    namespace: string,
    writes: ReadonlyArray<Write>,
    now: number,
    rules: PositionKind.Ordering,
    guard: Guard
  ) => Effect.Effect<Persisted, CursorStoreError>
  /**
   * `persist` of an unfenced write to a declared namespace without waiting, where the backend has
   * a synchronous driver (better-sqlite3; undefined elsewhere): when the session is free at once
   * the whole transaction runs in the caller's synchronous step and its outcome comes back as an
   * effect to continue with; `None` when the session is held, and nothing ran. Not retried: a
   * caller falls back to `persist` after a failure that provably rolled back.
   */
  readonly persistNow:
    | ((
        namespace: string,
        writes: ReadonlyArray<Write>,
        now: number,
        rules: PositionKind.Ordering
      ) => Option.Option<Effect.Effect<Persisted, CursorStoreError>>)
    | undefined
  /** Writes `writes` unconditionally (a deliberate reset, an import), in one transaction. */
  readonly overwrite: (
    namespace: string,
    writes: ReadonlyArray<Write>,
    now: number,
    guard: Guard
  ) => Effect.Effect<void, CursorStoreError>
  /** Deletes the cursors of `peers`; the peers that had one. */
  readonly remove: (
    namespace: string,
    peers: ReadonlyArray<Peer.Peer>,
    guard: Guard
  ) => Effect.Effect<ReadonlyArray<Peer.Peer>, CursorStoreError>
  /**
   * Deletes the cursors not changed since `before` (all but `keep`); the peers deleted. With
   * `dryRun` nothing is deleted: the peers that would be.
   */
  readonly expire: (
    namespace: string,
    before: number,
    options: { readonly dryRun: boolean; readonly keep: ReadonlySet<string>; readonly guard: Guard }
  ) => Effect.Effect<ReadonlyArray<Peer.Peer>, CursorStoreError>
  /**
   * A monotonic write of one cursor inside the caller's open transaction (no retry: only the
   * caller can re-run its transaction); true when it advanced the stored position.
   */
  readonly writeInTransaction: (
    namespace: string,
    write: Write,
    now: number,
    rules: PositionKind.Ordering,
    guard: Omit<Guard, "policy">
  ) => Effect.Effect<boolean, CursorStoreError>
  /** `PRAGMA wal_checkpoint(TRUNCATE)` on SQLite and local libSQL; nothing elsewhere. */
  readonly checkpoint: (namespace: string) => Effect.Effect<Checkpointed, CursorStoreError>
}

/** The storage service. */
export class CursorStore extends Context.Tag("@keel/cursor/CursorStore")<CursorStore, Storage>() {}
