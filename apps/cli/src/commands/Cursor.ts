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
  kind: Options.choice("kind", ["stream", "integer", "ms-seq", "lsn", "string", "json-map"]).pipe(
    Options.withDescription("The namespace's position kind (see `keel cursor lag --help`)."),
    Options.optional
  ),
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
  kind: Options.choice("kind", ["stream", "integer", "ms-seq", "lsn", "string", "json-map"]).pipe(
    Options.withDescription("The namespace's position kind (see `keel cursor lag --help`)."),
    Options.optional
  ),
  peer,
  position: Args.text({ name: "position" }).pipe(
    Args.withDescription(
      "A Redis stream id <ms>-<seq> (1700000000000-3) or an offset (42); in a namespace of another kind, a position of that kind."
    )
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

const kind = Options.choice("kind", ["stream", "integer", "ms-seq", "lsn", "string", "json-map"]).pipe(
  Options.withDescription(
    "The namespace's position kind (declared by its first use; default: $KEEL_CURSOR_POSITION_KIND, else the namespace's own, 'stream' for a new one)."
  ),
  Options.optional
)

const dryRun = Options.boolean("dry-run").pipe(
  Options.withDescription("Print what would change; write nothing.")
)

const lagConfig = {
  globals: Globals.options,
  namespace,
  kind,
  peer: Args.text({ name: "peer" }).pipe(
    Args.withDescription("Only this peer (default: every cursor of the namespace)."),
    Args.optional
  ),
  head: Options.text("head").pipe(
    Options.withDescription("The head of the stream: the latest position a consumer could have applied."),
    Options.optional
  ),
  heads: Options.text("heads").pipe(
    Options.withDescription('A JSON file (or \'-\': stdin) of {"peer": "head"}: a head per peer.'),
    Options.optional
  )
}
/** `keel cursor lag`'s parsed input. */
export type LagInput = Command.Command.ParseConfig<typeof lagConfig>

/** `keel cursor lag`. */
export const lag = Command.make("lag", lagConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.lag(input))
).pipe(
  Command.withDescription(
    "How far cursors are behind the head (--head for all, or --heads with one per peer): offsets, milliseconds or bytes by kind."
  )
)

const resetConfig = {
  globals: Globals.options,
  namespace,
  kind,
  peers: Options.text("peer").pipe(
    Options.withDescription("A peer to reset (repeatable; default: every cursor of the namespace)."),
    Options.repeated
  ),
  toEarliest: Options.boolean("to-earliest").pipe(Options.withDescription("To the configured start (0).")),
  toLatest: Options.text("to-latest").pipe(
    Options.withDescription("To this head of the stream."),
    Options.optional
  ),
  to: Options.text("to").pipe(Options.withDescription("To this position."), Options.optional),
  toDatetime: Options.text("to-datetime").pipe(
    Options.withDescription("To the first stream id at or after this time (ISO 8601; stream ids only)."),
    Options.optional
  ),
  shiftBy: Options.text("shift-by").pipe(
    Options.withDescription("Move by this many (negative: back; offsets and LSNs only)."),
    Options.optional
  ),
  dryRun
}
/** `keel cursor reset`'s parsed input. */
export type ResetInput = Command.Command.ParseConfig<typeof resetConfig>

/** `keel cursor reset`. */
export const reset = Command.make("reset", resetConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.reset(input))
).pipe(
  Command.withDescription(
    "Move cursors, even backwards, in one transaction (Kafka's --reset-offsets): exactly one of --to-earliest, --to-latest, --to, --to-datetime, --shift-by."
  )
)

const expireConfig = {
  globals: Globals.options,
  namespace,
  idleFor: Options.text("idle-for").pipe(
    Options.withDescription("Delete the cursors that have not advanced for this long (30s, 5m, 2h, 7d…).")
  ),
  dryRun
}
/** `keel cursor expire`'s parsed input. */
export type ExpireInput = Command.Command.ParseConfig<typeof expireConfig>

/** `keel cursor expire`. */
export const expire = Command.make("expire", expireConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.expire(input))
).pipe(Command.withDescription("Delete idle cursors (not advanced for --idle-for)."))

const exportConfig = { globals: Globals.options, namespace }
/** `keel cursor export`'s parsed input. */
export type ExportInput = Command.Command.ParseConfig<typeof exportConfig>

/** `keel cursor export`. */
export const exportCursors = Command.make("export", exportConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.exportCursors(input))
).pipe(
  Command.withDescription("Print the namespace's cursors as one JSON document, for `keel cursor import`.")
)

const importConfig = {
  globals: Globals.options,
  namespace,
  kind,
  file: Options.text("file").pipe(
    Options.withDescription("The JSON document `keel cursor export` printed (default, or '-': stdin)."),
    Options.optional
  ),
  mode: Options.choice("mode", ["advance", "overwrite"]).pipe(
    Options.withDescription("advance: only move cursors forward (default); overwrite: set them as given."),
    Options.withDefault("advance" as const)
  ),
  dryRun
}
/** `keel cursor import`'s parsed input. */
export type ImportInput = Command.Command.ParseConfig<typeof importConfig>

/** `keel cursor import`. */
export const importCursors = Command.make("import", importConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.importCursors(input))
).pipe(
  Command.withDescription(
    "Import exported cursors in one transaction; one bad line fails and writes nothing."
  )
)

const fenceConfig = { globals: Globals.options, namespace }
/** `keel cursor fence`'s parsed input. */
export type FenceInput = Command.Command.ParseConfig<typeof fenceConfig>

/** `keel cursor fence`. */
export const fence = Command.make("fence", fenceConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.fence(input))
).pipe(
  Command.withDescription(
    "Take the namespace's next fence epoch: every fenced writer (KEEL_CURSOR_FENCED) holding an older one is refused from now on."
  )
)

/** `keel cursor`. */
export const cursor = Command.make("cursor").pipe(
  Command.withDescription(
    "Durable per-peer stream cursors (last applied stream id) that never move backwards."
  ),
  Command.withSubcommands([
    get,
    set,
    list,
    remove,
    flush,
    lag,
    reset,
    expire,
    exportCursors,
    importCursors,
    fence
  ])
)
