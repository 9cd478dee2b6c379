/**
 * Writes that bypass the debounce and write at once: delete, reset (one peer, or Kafka-style over
 * many with a dry run), import, idle expiry, and the monotonic write inside the caller's
 * transaction. Every input is validated before anything is written; memory follows the database
 * only after COMMIT.
 */
import * as Retry from "@keel/sql/Retry"
import * as Transaction from "@keel/sql/Transaction"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { type CursorStoreError, InvalidPeer, InvalidPosition } from "../CursorError.js"
import type * as CursorStore from "../CursorStore.js"
import type * as Peer from "../Peer.js"
import * as Position from "../Position.js"
import type {
  ExpireResult,
  Export,
  ExportedCursor,
  ImportMode,
  ImportResult,
  ResetChange,
  ResetResult,
  ResetTarget
} from "../Schemas.js"
import { asOperation, declaring, type Env, guardOf, keyedOf, peerOf } from "./env.js"
import { getAll } from "./reads.js"

const guard = (env: Env) => Effect.flatMap(Retry.CurrentPolicy, (policy) => guardOf(env, policy))

/** Memory after a write of `writes` committed: each peer holds what was written, clean. */
const adopt = (env: Env, writes: ReadonlyArray<CursorStore.Write>) =>
  env.memory.transition((memory) => {
    for (const write of writes)
      memory.put(write.peer, { position: write.position, key: write.key, dirty: false })
  })

/** Removes `peer`'s cursor from the database and memory; true when there was one. */
export const remove =
  (env: Env) =>
  (peerText: string): Effect.Effect<boolean, InvalidPeer | CursorStoreError> =>
    env.writer.withPermits(1)(
      Effect.gen(function* () {
        const peer = yield* peerOf(peerText)
        const deleted = yield* env.storage.remove(env.namespace, [peer], yield* guard(env))
        const inMemory = yield* env.memory.transition((memory) => {
          const held = memory.cursors.has(peer)
          memory.put(peer, undefined)
          return held
        })
        return deleted.length > 0 || inMemory
      })
    )

/** Moves `peer` to `position`, even backwards, at once. */
export const reset =
  (env: Env) =>
  (
    peerText: string,
    positionText: string
  ): Effect.Effect<Position.Any, InvalidPeer | InvalidPosition | CursorStoreError> =>
    env.writer.withPermits(1)(
      Effect.gen(function* () {
        const peer = yield* peerOf(peerText)
        const keyed = yield* keyedOf(env, positionText)
        const write = { peer, ...keyed }
        yield* declaring(
          env,
          env.storage.overwrite(env.namespace, [write], yield* Clock.currentTimeMillis, yield* guard(env))
        )
        yield* adopt(env, [write])
        return keyed.position
      })
    )

/** The monotonic write of one cursor in the caller's transaction; true when it advanced. */
export const setInTransaction =
  (env: Env) =>
  (
    peerText: string,
    positionText: string
  ): Effect.Effect<boolean, InvalidPeer | InvalidPosition | CursorStoreError, Transaction.Active> =>
    Effect.gen(function* () {
      const peer = yield* peerOf(peerText)
      const keyed = yield* keyedOf(env, positionText)
      const active = yield* Transaction.Active
      if (active.backend !== env.backend) {
        return yield* Effect.dieMessage(
          "Cursors.setInTransaction: the open transaction belongs to another database than the store's"
        )
      }
      const now = yield* Clock.currentTimeMillis
      // Declares the namespace in the caller's transaction when it may not be yet, every time (not
      // `declaring`): that transaction may still roll back, so this store cannot count it declared.
      return yield* env.storage.writeInTransaction(
        env.namespace,
        { peer, ...keyed },
        now,
        env.rules,
        yield* guard(env)
      )
    })

const unsupported = (field: string, text: string, reason: string) =>
  Effect.fail(new InvalidPosition({ field, position: text, reason }))

/** Where `target` puts a cursor now at `from` (none: it has no cursor). */
const targetOf = (
  env: Env,
  target: ResetTarget,
  from: Position.Any | undefined,
  head: string | undefined
): Effect.Effect<Position.Any, InvalidPosition> => {
  const kind = env.rules.kind
  switch (target._tag) {
    case "Earliest":
      return Effect.succeed(env.start)
    case "Latest":
      return Effect.map(keyedOf(env, head ?? target.head, "head"), (keyed) => keyed.position)
    case "Position":
      return Effect.map(keyedOf(env, target.position, "to"), (keyed) => keyed.position)
    case "Time": {
      if (kind !== "stream" && kind !== "ms-seq")
        return unsupported("to-datetime", String(target.at), `positions of kind ${kind} carry no time`)
      if (!Number.isSafeInteger(target.at) || target.at < 0)
        return unsupported("to-datetime", String(target.at), "expected epoch milliseconds")
      return Effect.map(keyedOf(env, `${target.at}-0`, "to-datetime"), (keyed) => keyed.position)
    }
    case "Shift": {
      const at = from ?? env.start
      const shifted = (value: bigint) => (value + target.by < 0n ? 0n : value + target.by)
      if (kind === "lsn") {
        const slash = at.indexOf("/")
        const value = shifted((BigInt(`0x${at.slice(0, slash)}`) << 32n) + BigInt(`0x${at.slice(slash + 1)}`))
        const text = `${(value >> 32n).toString(16).toUpperCase()}/${(value & 0xffffffffn).toString(16).toUpperCase()}`
        return Effect.map(keyedOf(env, text, "shift-by"), (keyed) => keyed.position)
      }
      if ((kind === "integer" || kind === "stream") && Position.form(at as Position.Position) === "offset")
        return Effect.map(keyedOf(env, String(shifted(BigInt(at))), "shift-by"), (keyed) => keyed.position)
      return unsupported(
        "shift-by",
        String(target.by),
        `a shift needs offsets or LSNs; ${JSON.stringify(at)} is neither`
      )
    }
  }
}

/**
 * Kafka-style reset of many cursors (`peers`, or every stored one) to `target`, in one
 * transaction; on a dry run nothing is written. `head` gives `Latest` a head per peer.
 */
export const resetMany =
  (env: Env) =>
  <E = never, R = never>(
    target: ResetTarget,
    options: {
      readonly peers?: ReadonlyArray<string> | undefined
      readonly dryRun?: boolean | undefined
      readonly head?: ((peer: Peer.Peer) => Effect.Effect<string, E, R>) | undefined
    } = {}
  ): Effect.Effect<ResetResult, InvalidPeer | InvalidPosition | CursorStoreError | E, R> =>
    env.writer.withPermits(1)(
      Effect.gen(function* () {
        const all = yield* getAll(env)
        const byPeer = new Map(all.map((cursor) => [cursor.peer as string, cursor]))
        const peers =
          options.peers === undefined
            ? all.map((cursor) => cursor.peer)
            : yield* Effect.forEach(options.peers, peerOf)
        const changes: Array<ResetChange> = []
        for (const peer of peers) {
          const from = byPeer.get(peer)?.position
          const head =
            target._tag === "Latest" && options.head !== undefined ? yield* options.head(peer) : undefined
          changes.push({ peer, from: from ?? null, to: yield* targetOf(env, target, from, head) })
        }
        const dryRun = options.dryRun === true
        if (!dryRun && changes.length > 0) {
          const writes = changes.map((change) => ({
            peer: change.peer,
            position: change.to,
            key: env.rules.key(change.to)
          }))
          yield* Effect.mapError(
            declaring(
              env,
              env.storage.overwrite(env.namespace, writes, yield* Clock.currentTimeMillis, yield* guard(env))
            ),
            asOperation("reset")
          )
          yield* adopt(env, writes)
        }
        return { dryRun, changes }
      })
    )

/** Every cursor of the namespace as `import` reads it back. */
export const exportAll = (env: Env): Effect.Effect<Export, CursorStoreError> =>
  Effect.map(getAll(env), (all) => ({
    namespace: env.namespace,
    kind: env.rules.kind,
    cursors: all.map((cursor) => ({
      peer: cursor.peer,
      position: cursor.position,
      updatedAt: cursor.updatedAt
    }))
  }))

/**
 * Imports cursors: every line is validated first (a bad one fails typed, naming its index, and
 * nothing is written); then one transaction writes them monotonically (`advance`) or as given.
 */
export const importAll =
  (env: Env) =>
  (
    cursors: ReadonlyArray<ExportedCursor>,
    options: { readonly mode?: ImportMode | undefined; readonly dryRun?: boolean | undefined } = {}
  ): Effect.Effect<ImportResult, InvalidPeer | InvalidPosition | CursorStoreError> =>
    env.writer.withPermits(1)(
      Effect.gen(function* () {
        const writes: Array<CursorStore.Write> = []
        const seen = new Set<string>()
        for (const [index, cursor] of cursors.entries()) {
          const peer = yield* Effect.mapError(
            peerOf(cursor.peer),
            (error) =>
              new InvalidPeer({ field: `cursors[${index}].peer`, value: error.value, reason: error.reason })
          )
          if (seen.has(peer)) {
            return yield* new InvalidPeer({
              field: `cursors[${index}].peer`,
              value: peer,
              reason: "the peer appears twice"
            })
          }
          seen.add(peer)
          writes.push({ peer, ...(yield* keyedOf(env, cursor.position, `cursors[${index}].position`)) })
        }
        const dryRun = options.dryRun === true
        const mode = options.mode ?? "advance"
        if (mode === "overwrite") {
          if (!dryRun && writes.length > 0) {
            yield* Effect.mapError(
              declaring(
                env,
                env.storage.overwrite(
                  env.namespace,
                  writes,
                  yield* Clock.currentTimeMillis,
                  yield* guard(env)
                )
              ),
              asOperation("import")
            )
            yield* adopt(env, writes)
          }
          return { dryRun, written: writes.length, skipped: [] }
        }
        if (dryRun) {
          const stored = new Map(
            (yield* env.storage.read(
              env.namespace,
              writes.map((w) => w.peer)
            )).map((row) => [row.peer, row])
          )
          const forward = writes.filter((write) => {
            const row = stored.get(write.peer)
            return row === undefined || env.rules.compare(write, row) === "after"
          })
          const moving = new Set(forward.map((write) => write.peer))
          return {
            dryRun,
            written: forward.length,
            skipped: writes.filter((w) => !moving.has(w.peer)).map((w) => w.peer)
          }
        }
        const persisted = yield* Effect.mapError(
          declaring(
            env,
            env.storage.persist(
              env.namespace,
              writes,
              yield* Clock.currentTimeMillis,
              env.rules,
              yield* guard(env)
            )
          ),
          asOperation("import")
        )
        yield* adopt(
          env,
          writes.filter((write) => persisted.advanced.has(write.peer))
        )
        yield* adopt(
          env,
          persisted.others.map((row) => ({ peer: row.peer, position: row.position, key: row.key }))
        )
        return {
          dryRun,
          written: persisted.advanced.size,
          skipped: writes.filter((write) => !persisted.advanced.has(write.peer)).map((write) => write.peer)
        }
      })
    )

/**
 * Deletes the cursors that have not advanced for `idleFor` (peers dirty in this process's memory
 * are kept: they are not idle). On a dry run, the peers that would go.
 */
export const expire =
  (env: Env) =>
  (
    idleFor: Duration.DurationInput,
    options: { readonly dryRun?: boolean | undefined } = {}
  ): Effect.Effect<ExpireResult, CursorStoreError> =>
    env.writer.withPermits(1)(
      Effect.gen(function* () {
        const before = (yield* Clock.currentTimeMillis) - Duration.toMillis(Duration.decode(idleFor))
        const keep = new Set<string>((yield* env.memory.current).pending)
        const dryRun = options.dryRun === true
        const expired = yield* env.storage.expire(env.namespace, before, {
          dryRun,
          keep,
          guard: yield* guard(env)
        })
        if (!dryRun) {
          yield* env.memory.transition((memory) => {
            for (const peer of expired) {
              const held = memory.cursors.get(peer)
              if (held !== undefined && !held.dirty) memory.put(peer, undefined)
            }
          })
        }
        return { dryRun, expired }
      })
    )
