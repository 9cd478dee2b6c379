/**
 * The `cursors` routes over the server's cursor store (one namespace, `KEEL_CURSOR_NAMESPACE`).
 * `PUT` advances a position in memory (persisted by the next flush, at the latest on shutdown);
 * `reset`, `delete` and the tools (many-cursor reset, import, expiry) write at once; `lag` compares
 * with a head the caller gives.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as Cursor from "@keel/cursor/Cursor"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { KeelApi } from "../Api.js"
import { CursorNotFound } from "../HttpError.js"

/** The `cursors` group. */
export const layer = HttpApiBuilder.group(KeelApi, "cursors", (handlers) =>
  Effect.gen(function* () {
    const cursors = yield* Cursor.Cursors
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
      .handle("lags", ({ urlParams }) => Effect.map(cursors.lags(urlParams.head), (lags) => ({ lags })))
      .handle("lag", ({ path, urlParams }) => cursors.lag(path.peer, urlParams.head))
      .handle("resetMany", ({ payload }) =>
        cursors.resetTo(payload.target, { peers: payload.peers, dryRun: payload.dryRun })
      )
      .handle("export", () => cursors.export)
      .handle("import", ({ payload }) =>
        cursors.import(payload.cursors, { mode: payload.mode, dryRun: payload.dryRun })
      )
      .handle("expire", ({ payload }) =>
        cursors.expire(Duration.millis(payload.idleForMs), { dryRun: payload.dryRun })
      )
  })
)
