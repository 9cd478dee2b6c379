/**
 * The `cursors` routes over the server's cursor store (one namespace, `KEEL_CURSOR_NAMESPACE`).
 * `PUT` advances a position in memory (persisted by the next flush, at the latest on shutdown);
 * `reset` and `delete` write at once.
 */
import { HttpApiBuilder } from "@effect/platform"
import { Cursor } from "@keel/cursor"
import { Effect, Option } from "effect"
import { KeelApi } from "../Api.js"
import { CursorNotFound } from "../HttpError.js"

/** The `cursors` group. */
export const layer = HttpApiBuilder.group(KeelApi, "cursors", (handlers) =>
  Effect.gen(function* () {
    const cursors = yield* Cursor.CursorStore
    return handlers
      .handle("list", () =>
        Effect.map(cursors.getAll, (all) => ({ namespace: cursors.namespace, cursors: all }))
      )
      .handle("flush", () => cursors.flush)
      .handle("get", ({ path }) =>
        Effect.flatMap(cursors.get(path.peer), (position) =>
          Option.match(position, {
            onNone: () => Effect.fail(new CursorNotFound({ peer: path.peer })),
            onSome: (position) => Effect.succeed({ peer: path.peer, position })
          })
        )
      )
      .handle("set", ({ path, payload }) => cursors.set(path.peer, payload.position))
      .handle("reset", ({ path, payload }) =>
        Effect.map(cursors.reset(path.peer, payload.position), (position) => ({ peer: path.peer, position }))
      )
      .handle("delete", ({ path }) => Effect.map(cursors.delete(path.peer), (deleted) => ({ deleted })))
  })
)
