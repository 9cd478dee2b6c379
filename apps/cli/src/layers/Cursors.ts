/** The cursor store a command opens (`keel cursor …`). */
import * as Cursor from "@keel/cursor/Cursor"
import * as Keel from "@keel/server/Keel"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Globals from "../GlobalOptions.js"
import { database } from "./Database.js"

/**
 * The cursor store (config from `KEEL_CURSOR_*`) over the database; `namespace`, when given,
 * replaces `KEEL_CURSOR_NAMESPACE`. Its release flushes and checkpoints.
 */
export const cursors = (
  namespace: Option.Option<string>
): Layer.Layer<
  Cursor.Cursors,
  Layer.Layer.Error<typeof Keel.cursors> | Layer.Layer.Error<typeof database>,
  Globals.Globals
> =>
  Layer.provide(
    Option.match(namespace, {
      onNone: () => Keel.cursors,
      onSome: (name) =>
        Layer.unwrapEffect(
          Effect.map(Cursor.config, (config) => Cursor.layer({ ...config, namespace: name }))
        )
    }),
    database
  )
