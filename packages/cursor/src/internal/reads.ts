/**
 * Reads: the latest position of a peer (memory or database, whichever is later), every cursor of
 * the namespace, and lag against a head the caller supplies.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { CursorStoreError, InvalidPeer, InvalidPosition } from "../CursorError.js"
import type * as CursorStore from "../CursorStore.js"
import type * as Peer from "../Peer.js"
import type * as Position from "../Position.js"
import type * as PositionKind from "../PositionKind.js"
import type { Cursor, Lag } from "../Schemas.js"
import { asOperation, type Env, keyedOf, peerOf } from "./env.js"

/** True when memory holds a position the database does not have yet (later, or for a map not behind). */
const memoryAhead = (env: Env, held: PositionKind.Keyed, row: CursorStore.Stored) =>
  env.rules.compare(held, row) === "after"

/**
 * The latest position of `peer`. A stored position at or past memory replaces memory, so a later
 * `set` of an older position is ignored as stale.
 */
export const getPeer = (
  env: Env,
  peer: Peer.Peer
): Effect.Effect<Option.Option<Position.Any>, CursorStoreError> =>
  Effect.gen(function* () {
    const [row] = yield* Effect.mapError(env.storage.read(env.namespace, [peer]), asOperation("get"))
    return yield* env.memory.transition((memory): Option.Option<Position.Any> => {
      const held = memory.cursors.get(peer)
      if (row === undefined) return Option.map(Option.fromNullable(held), (entry) => entry.position)
      if (held !== undefined && memoryAhead(env, held, row)) return Option.some(held.position)
      memory.put(peer, { position: row.position, key: row.key, dirty: false })
      return Option.some(row.position)
    })
  })

/** `getPeer` of a peer given as text. */
export const get =
  (env: Env) =>
  (peerText: string): Effect.Effect<Option.Option<Position.Any>, InvalidPeer | CursorStoreError> =>
    Effect.flatMap(peerOf(peerText), (peer) => getPeer(env, peer))

/** Every cursor of the namespace, stored or only in memory, ordered by peer. */
export const getAll = (env: Env): Effect.Effect<ReadonlyArray<Cursor>, CursorStoreError> =>
  Effect.gen(function* () {
    const rows = yield* Effect.mapError(env.storage.read(env.namespace, undefined), asOperation("getAll"))
    const memory = (yield* env.memory.current).cursors
    const cursors: Array<Cursor> = rows.map((row) => {
      const held = memory.get(row.peer)
      const newer = held !== undefined && memoryAhead(env, held, row)
      return {
        peer: row.peer,
        position: newer ? held.position : row.position,
        stored: row.position,
        updatedAt: row.updatedAt,
        pending: newer && held.dirty
      }
    })
    const storedPeers = new Set<string>(rows.map((row) => row.peer))
    for (const [peer, entry] of memory) {
      if (!storedPeers.has(peer)) {
        cursors.push({ peer, position: entry.position, stored: null, updatedAt: null, pending: entry.dirty })
      }
    }
    return cursors.sort((a, b) => (a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0))
  })

/** How far `position` is behind `head`. */
const lagOf = (
  env: Env,
  peer: Peer.Peer,
  position: Option.Option<Position.Any>,
  head: Position.Any
): Lag => ({
  peer,
  position: Option.getOrNull(position),
  head,
  ...env.rules.distance(Option.getOrUndefined(position), head)
})

/** The lag of `peer` against `head` (a position of the namespace's kind). */
export const lag =
  (env: Env) =>
  (
    peerText: string,
    headText: string
  ): Effect.Effect<Lag, InvalidPeer | InvalidPosition | CursorStoreError> =>
    Effect.gen(function* () {
      const peer = yield* peerOf(peerText)
      const head = yield* keyedOf(env, headText, "head")
      return lagOf(env, peer, yield* getPeer(env, peer), head.position)
    })

/** Where the head of a peer's stream is: one position for every peer, or a function per peer. */
export type Head<E = never, R = never> = string | ((peer: Peer.Peer) => Effect.Effect<string, E, R>)

/** The lag of every cursor of the namespace against `head`, ordered by peer. */
export const lags =
  (env: Env) =>
  <E = never, R = never>(
    head: Head<E, R>
  ): Effect.Effect<ReadonlyArray<Lag>, InvalidPosition | CursorStoreError | E, R> =>
    Effect.gen(function* () {
      const all = yield* getAll(env)
      return yield* Effect.forEach(all, (cursor) =>
        Effect.map(
          Effect.flatMap(typeof head === "string" ? Effect.succeed(head) : head(cursor.peer), (text) =>
            keyedOf(env, text, "head")
          ),
          (keyed) => lagOf(env, cursor.peer, Option.some(cursor.position), keyed.position)
        )
      )
    })
