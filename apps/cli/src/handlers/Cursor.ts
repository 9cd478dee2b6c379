/**
 * The programs of `keel cursor …` (loaded on demand): each provides only the database and the
 * cursor store of the namespace. A `set` is flushed before the command ends, and its failure is
 * the command's failure: a position keel reports as set is in the database.
 */
import { Cursor } from "@keel/cursor"
import { Data, Effect, Option } from "effect"
import type { DeleteInput, FlushInput, GetInput, ListInput, SetInput } from "../commands/Cursor.js"
import * as Layers from "../Layers.js"
import * as Output from "../Output.js"

/** A peer without a cursor, for `keel cursor get` without `--or-start` (exit 1). */
export class CursorNotFound extends Data.TaggedError("CursorNotFound")<{ readonly peer: string }> {
  override get message(): string {
    return `no cursor for peer ${JSON.stringify(this.peer)}`
  }
}

const withStore = <E, R>(namespace: Option.Option<string>, program: Effect.Effect<void, E, R>) =>
  Effect.provide(program, Layers.cursors(namespace))

/** `keel cursor get`. */
export const get = (input: GetInput) =>
  withStore(
    input.namespace,
    Effect.gen(function* () {
      const store = yield* Cursor.CursorStore
      const stored = yield* store.get(input.peer)
      const position = Option.isSome(stored)
        ? stored.value
        : input.orStart
          ? store.start
          : yield* Effect.fail(new CursorNotFound({ peer: input.peer }))
      yield* Output.result(
        { namespace: store.namespace, peer: input.peer, position, found: Option.isSome(stored) },
        () => position
      )
    })
  )

/** `keel cursor set`: advance (or with `--force` rewind), then persist before exiting. */
export const set = (input: SetInput) =>
  withStore(
    input.namespace,
    Effect.gen(function* () {
      const store = yield* Cursor.CursorStore
      if (input.force) {
        const position = yield* store.reset(input.peer, input.position)
        yield* Output.confirmation(
          { namespace: store.namespace, peer: input.peer, outcome: "reset", position },
          () => `${input.peer} reset to ${position}`
        )
        return
      }
      // Reading first loads the stored position, so an older one is reported as stale now rather
      // than discovered by the flush.
      yield* store.get(input.peer)
      const result = yield* store.set(input.peer, input.position)
      yield* store.flush
      yield* Output.confirmation(
        { namespace: store.namespace, peer: result.peer, outcome: result.outcome, position: result.position },
        () =>
          result.outcome === "stale"
            ? `${input.peer} is already at ${result.position}; ${input.position} ignored (use --force to rewind)`
            : `${input.peer} at ${result.position}${result.outcome === "unchanged" ? " (unchanged)" : ""}`
      )
    })
  )

/** `keel cursor list`. */
export const list = (input: ListInput) =>
  withStore(
    input.namespace,
    Effect.gen(function* () {
      const store = yield* Cursor.CursorStore
      const cursors = yield* store.getAll
      yield* Output.result({ namespace: store.namespace, cursors }, () =>
        cursors.length === 0
          ? ""
          : Output.table(
              ["PEER", "POSITION", "UPDATED"],
              cursors.map((cursor) => [
                cursor.peer,
                cursor.position,
                cursor.updatedAt === null ? "-" : new Date(cursor.updatedAt).toISOString()
              ])
            )
      )
    })
  )

/** `keel cursor delete`. */
export const remove = (input: DeleteInput) =>
  withStore(
    input.namespace,
    Effect.gen(function* () {
      const store = yield* Cursor.CursorStore
      const deleted = yield* store.delete(input.peer)
      yield* Output.confirmation({ namespace: store.namespace, peer: input.peer, deleted }, () =>
        deleted ? `deleted the cursor of ${input.peer}` : `${input.peer} has no cursor`
      )
    })
  )

/** `keel cursor flush`. */
export const flush = (input: FlushInput) =>
  withStore(
    input.namespace,
    Effect.gen(function* () {
      const store = yield* Cursor.CursorStore
      const flushed = yield* store.flush
      const checkpoint = yield* store.checkpoint
      yield* Output.confirmation({ namespace: store.namespace, flush: flushed, checkpoint }, () =>
        checkpoint._tag === "WalCheckpoint"
          ? `flushed ${flushed.persisted} cursor(s); WAL checkpointed${checkpoint.busy ? " partly (readers busy)" : ""}`
          : `flushed ${flushed.persisted} cursor(s); ${checkpoint.reason}`
      )
    })
  )
