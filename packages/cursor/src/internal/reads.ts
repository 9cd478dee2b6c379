/**
 * Reads: the latest position of a peer (memory or database, whichever is later), every cursor of
 * the namespace, and lag against a head the caller supplies.
 */
import { Effect, HashMap, Option } from "effect"
import type { CursorStoreError, InvalidPeer, InvalidPosition } from "../CursorError.js"
import type * as CursorStore from "../CursorStore.js"
import type * as Peer from "../Peer.js"
import type * as Position from "../Position.js"
import type { Cursor, Lag } from "../Schemas.js"
import { asOperation, type Env, keyedOf, peerOf } from "./env.js"
import { put, type State } from "./state.js"

/** True when memory holds a position the database does not have yet (later, or for a map not behind). */
const memoryAhead = (
  env: Env,
  held: Option.Option<{ position: Position.Any; key: string }>,
  row: CursorStore.Stored
) => Option.isSome(held) && env.rules.compare(held.value, row) === "after"

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
    return yield* env.memory.transition((current): readonly [Option.Option<Position.Any>, State] => {
      const held = HashMap.get(current.cursors, peer)
      if (row === undefined) return [Option.map(held, (entry) => entry.position), current]
      if (Option.isSome(held) && memoryAhead(env, held, row))
        return [Option.some(held.value.position), current]
      return [
        Option.some(row.position),
        put(current, peer, { position: row.position, key: row.key, dirty: false })
      ]
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
    const memory = (yield* env.memory.ref).cursors
    const cursors: Array<Cursor> = rows.map((row) => {
      const held = HashMap.get(memory, row.peer)
      const newer = memoryAhead(env, held, row)
      return {
        peer: row.peer,
        position: Option.isSome(held) && newer ? held.value.position : row.position,
        stored: row.position,
        updatedAt: row.updatedAt,
        pending: Option.isSome(held) && newer && held.value.dirty
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
