/**
 * `keel cursor …`: durable per-peer stream cursors that never move backwards. The programs live
 * in `handlers/Cursor.ts`, loaded on demand.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Globals from "../Globals.js"
import * as Leaf from "../Leaf.js"

const handlers = () => import("../handlers/Cursor.js")

const namespace = Options.text("namespace").pipe(
  Options.withDescription(
    "Which consumer application owns the cursors (default: $KEEL_CURSOR_NAMESPACE or 'default')."
  ),
  Options.optional
)

const peer = Args.text({ name: "peer" }).pipe(
  Args.withDescription("Who the cursor belongs to (a replica, a consumer).")
)

const getConfig = {
  globals: Globals.options,
  namespace,
  peer,
  orStart: Options.boolean("or-start").pipe(
    Options.withDescription("Print the configured start position (0) for an unknown peer instead of failing.")
  )
}
/** `keel cursor get`'s parsed input. */
export type GetInput = Command.Command.ParseConfig<typeof getConfig>

/** `keel cursor get`. */
export const get = Command.make("get", getConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.get(input))
).pipe(Command.withDescription("Print a peer's position (exit 1 when it has none, unless --or-start)."))

const setConfig = {
  globals: Globals.options,
  namespace,
  peer,
  position: Args.text({ name: "position" }).pipe(
    Args.withDescription("A Redis stream id <ms>-<seq> (1700000000000-3) or an offset (42).")
  ),
  force: Options.boolean("force").pipe(
    Options.withDescription("Move the cursor even backwards (a deliberate rewind), written at once.")
  )
}
/** `keel cursor set`'s parsed input. */
export type SetInput = Command.Command.ParseConfig<typeof setConfig>

/** `keel cursor set`. */
export const set = Command.make("set", setConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.set(input))
).pipe(
  Command.withDescription(
    "Advance a peer's cursor and persist it; an older position is ignored ('stale') unless --force."
  )
)

const listConfig = { globals: Globals.options, namespace }
/** `keel cursor list`'s parsed input. */
export type ListInput = Command.Command.ParseConfig<typeof listConfig>

/** `keel cursor list`. */
export const list = Command.make("list", listConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.list(input))
).pipe(Command.withDescription("List the namespace's cursors by peer."))

const deleteConfig = { globals: Globals.options, namespace, peer }
/** `keel cursor delete`'s parsed input. */
export type DeleteInput = Command.Command.ParseConfig<typeof deleteConfig>

/** `keel cursor delete`. */
export const remove = Command.make("delete", deleteConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.remove(input))
).pipe(Command.withDescription("Delete a peer's cursor (a reset to the start); succeeds when there is none."))

const flushConfig = { globals: Globals.options, namespace }
/** `keel cursor flush`'s parsed input. */
export type FlushInput = Command.Command.ParseConfig<typeof flushConfig>

/** `keel cursor flush`. */
export const flush = Command.make("flush", flushConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.flush(input))
).pipe(Command.withDescription("Persist pending cursors and checkpoint the SQLite write-ahead log (WAL)."))

/** `keel cursor`. */
export const cursor = Command.make("cursor").pipe(
  Command.withDescription(
    "Durable per-peer stream cursors (last applied stream id) that never move backwards."
  ),
  Command.withSubcommands([get, set, list, remove, flush])
)
