/**
 * `keel port …`: port reservations keyed by (path, tag). `reserve` prints only the port, so
 * `PORT=$(keel port reserve --tag web)` works; paths default to the working directory and
 * relative paths resolve against it. The programs live in `handlers/Port.ts`, loaded on demand.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Globals from "../Globals.js"
import * as Leaf from "../Leaf.js"
import * as Trop from "./port/Trop.js"

const handlers = () => import("../handlers/Port.js")

const path = Options.text("path").pipe(
  Options.withAlias("p"),
  Options.withDescription("Project directory (default: the working directory; relative to it)."),
  Options.optional
)

const tag = Options.text("tag").pipe(
  Options.withAlias("t"),
  Options.withDescription("Service name within the path (web, api…); none for the untagged reservation."),
  Options.optional
)

const allowUnrelated = Options.boolean("allow-unrelated").pipe(
  Options.withDescription("Act on a path that is neither the working directory nor related to it.")
)

/** Options shared by `reserve` and `reserve-group`. */
const allocation = {
  range: Options.text("range").pipe(
    Options.withDescription("Port range for new ports, e.g. 5000-7000 (default from the config: 5000-7000)."),
    Options.optional
  ),
  exclude: Options.text("exclude").pipe(
    Options.withDescription("A port or range never to hand out (repeatable): 5432, 6000-6010."),
    Options.repeated
  ),
  project: Options.text("project").pipe(Options.withDescription("Project label (sticky)."), Options.optional),
  task: Options.text("task").pipe(Options.withDescription("Task label (sticky)."), Options.optional),
  ttl: Options.text("ttl").pipe(
    Options.withDescription("Expire this long after the last use: 90m, 7d, '2 hours', or milliseconds."),
    Options.optional
  ),
  force: Options.boolean("force").pipe(
    Options.withDescription(
      "Take the preferred port even if excluded or in use, move an existing reservation, relabel it."
    )
  ),
  allowUnrelated,
  noOccupancyCheck: Options.boolean("no-occupancy-check").pipe(
    Options.withAlias("skip-occupancy-check"),
    Options.withDescription("Do not probe whether something already uses a port (TCP or UDP).")
  )
}

/** The parsed options shared by `reserve` and `reserve-group`. */
export type AllocationInput = Command.Command.ParseConfig<typeof allocation>

const reserveConfig = {
  globals: Globals.options,
  path,
  tag,
  preferred: Options.integer("preferred").pipe(
    Options.withDescription("The port to take when it is free (it may lie outside the range)."),
    Options.optional
  ),
  ...allocation
}

/**
 * `keel port reserve`'s parsed input, without trop's change-control flags (the fast path, which
 * recognises only these options, builds exactly this; see `FastPath.ts`).
 */
export type ReserveInput = Command.Command.ParseConfig<typeof reserveConfig>

/** trop's change-control flags of `keel port reserve`, when given. */
export type ReserveControl = Partial<Command.Command.ParseConfig<typeof Trop.control>>

/** `keel port reserve`: prints only the port. */
export const reserve = Command.make("reserve", { ...reserveConfig, ...Trop.control }, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.reserve(input))
).pipe(
  Command.withDescription(
    "Reserve a port for (path, tag) and print only the port. The same (path, tag) always gets its port back."
  )
)

const reserveGroupConfig = {
  globals: Globals.options,
  services: Args.text({ name: "service" }).pipe(
    Args.withDescription(
      "TAG, TAG=PREFERRED_PORT, or TAG+OFFSET (placed together at base + offset); or one trop.yaml file whose reservations to reserve for its directory."
    ),
    Args.atLeast(1)
  ),
  path,
  base: Options.integer("base").pipe(
    Options.withDescription("The base port tried first for the offset pattern."),
    Options.optional
  ),
  format: Trop.format,
  shell: Trop.shell,
  ...allocation,
  ...Trop.control
}

/** `keel port reserve-group`'s parsed input. */
export type ReserveGroupInput = Command.Command.ParseConfig<typeof reserveGroupConfig>

/** `keel port reserve-group`: a port for every service, all or none. */
export const reserveGroup = Command.make("reserve-group", reserveGroupConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.reserveGroup(input))
).pipe(
  Command.withDescription(
    "Reserve a port for every service of a path (or of a trop.yaml) in one transaction; prints 'TAG PORT' lines (--format export|dotenv|json|human)."
  )
)

const releaseConfig = {
  globals: Globals.options,
  path,
  tag,
  untaggedOnly: Options.boolean("untagged-only").pipe(
    Options.withDescription("Only the path's untagged reservation.")
  ),
  recursive: Options.boolean("recursive").pipe(
    Options.withAlias("r"),
    Options.withDescription("Also release every reservation below the path.")
  ),
  dryRun: Options.boolean("dry-run").pipe(Options.withDescription("Show what would be released.")),
  allowUnrelated
}

/** `keel port release`'s parsed input. */
export type ReleaseInput = Command.Command.ParseConfig<typeof releaseConfig>

/** `keel port release`. */
export const release = Command.make("release", releaseConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.release(input))
).pipe(
  Command.withDescription(
    "Release a path's reservations: one tag (--tag), all of them, or everything below it (--recursive)."
  )
)

const listConfig = {
  globals: Globals.options,
  pathPrefix: Options.text("path-prefix").pipe(
    Options.withDescription("Only this directory and below (relative to the working directory)."),
    Options.optional
  ),
  project: Options.text("project").pipe(Options.withDescription("Only this project."), Options.optional),
  tag: Options.text("tag").pipe(
    Options.withAlias("t"),
    Options.withDescription("Only this tag."),
    Options.optional
  ),
  format: Options.choice("format", ["table", "json", "csv", "tsv"]).pipe(
    Options.withDescription("table (default, or output_format of the config), json, csv or tsv."),
    Options.optional
  ),
  showFullPaths: Options.boolean("show-full-paths").pipe(
    Options.withDescription(
      "Print whole paths in the table (by default long paths are shortened from the left)."
    )
  )
}

/** `keel port list`'s parsed input. */
export type ListInput = Command.Command.ParseConfig<typeof listConfig>

/** `keel port list`. */
export const list = Command.make("list", listConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.list(input))
).pipe(Command.withDescription("List reservations by path, then tag."))

const showConfig = {
  globals: Globals.options,
  path,
  tag,
  port: Options.integer("port").pipe(
    Options.withDescription("Show the reservation holding this port instead."),
    Options.optional
  )
}

/** `keel port show`'s parsed input. */
export type ShowInput = Command.Command.ParseConfig<typeof showConfig>

/** `keel port show`. */
export const show = Command.make("show", showConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.show(input))
).pipe(
  Command.withDescription("Show the reservation of (path, tag), or of --port N; exit 1 when there is none.")
)

const cleanupConfig = {
  globals: Globals.options,
  dryRun: Options.boolean("dry-run").pipe(Options.withDescription("Show what would be removed.")),
  keepExpired: Options.boolean("keep-expired").pipe(
    Options.withDescription("Do not remove reservations past their ttl.")
  ),
  keepMissing: Options.boolean("keep-missing").pipe(
    Options.withDescription("Do not remove reservations whose directory is gone.")
  ),
  unusedFor: Options.text("unused-for").pipe(
    Options.withDescription("Also remove reservations not used for this long (e.g. 30d)."),
    Options.optional
  )
}

/** `keel port cleanup`'s parsed input. */
export type CleanupInput = Command.Command.ParseConfig<typeof cleanupConfig>

/** `keel port cleanup`. */
export const cleanup = Command.make("cleanup", cleanupConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.cleanup(input))
).pipe(
  Command.withDescription(
    "Remove reservations past their ttl, whose directory is gone, or unused for a while."
  )
)

/** `keel port`. */
export const port = Command.make("port").pipe(
  Command.withDescription("Port reservations keyed by (path, tag): no two reservations ever share a port."),
  Command.withSubcommands([reserve, reserveGroup, release, list, show, cleanup, ...Trop.commands])
)
