/**
 * The `keel port` commands a trop user expects besides reserve/release/list/show: autoreserve from
 * the project's `trop.yaml`, cleanup by name (prune, expire, autoclean), migrate, assertions,
 * port-info, the config files (init, validate, exclude, compact-exclusions, scan) and the data
 * directory. The programs live in `handlers/port/Trop.ts`, loaded on demand.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Globals from "../../Globals.js"
import * as Leaf from "../../Leaf.js"

const handlers = () => import("../../handlers/port/Trop.js")

const flag = (name: string, description: string) =>
  Options.boolean(name).pipe(Options.withDescription(description))

const dryRun = flag("dry-run", "Show what would change; change nothing.")

/** trop's change control and occupancy flags, for every reserving command. */
export const control = {
  allowProjectChange: flag(
    "allow-project-change",
    "Let this call change the sticky project of an existing reservation."
  ),
  allowTaskChange: flag(
    "allow-task-change",
    "Let this call change the sticky task of an existing reservation."
  ),
  overwrite: flag("overwrite", "Move an existing reservation to its preferred port when that port is free."),
  ignoreExclusions: flag("ignore-exclusions", "Hand out excluded ports too (this call only)."),
  dryRun,
  checkAllInterfaces: flag(
    "check-all-interfaces",
    "Also probe occupancy on every interface (0.0.0.0 and ::), not only on loopback."
  ),
  skipIpv4: flag("skip-ipv4", "Do not probe IPv4 occupancy."),
  skipIpv6: flag("skip-ipv6", "Do not probe IPv6 occupancy."),
  skipTcp: flag("skip-tcp", "Do not probe TCP occupancy."),
  skipUdp: flag("skip-udp", "Do not probe UDP occupancy."),
  disableAutoprune: flag(
    "disable-autoprune",
    "On exhaustion, do not remove reservations whose directory is gone."
  ),
  disableAutoexpire: flag(
    "disable-autoexpire",
    "On exhaustion, do not remove reservations past cleanup.expire_after_days."
  )
}

/** trop's occupancy flags of the commands that probe without reserving (`scan`, `port-info`). */
const probing = {
  checkAllInterfaces: control.checkAllInterfaces,
  skipIpv4: control.skipIpv4,
  skipIpv6: control.skipIpv6,
  skipTcp: control.skipTcp,
  skipUdp: control.skipUdp
}

/** How a group's ports are printed. */
export const format = Options.choice("format", ["export", "json", "dotenv", "human"]).pipe(
  Options.withDescription(
    "export: shell `export NAME='PORT'` lines (eval them); dotenv; json; human: TAG PORT lines."
  ),
  Options.optional
)

/** Which shell `--format export` writes for. */
export const shell = Options.choice("shell", ["bash", "zsh", "sh", "fish"]).pipe(
  Options.withDescription("The shell of --format export (default bash; fish uses set -gx)."),
  Options.withDefault("bash")
)

const autoreserveConfig = {
  globals: Globals.options,
  format,
  shell,
  range: Options.text("range").pipe(Options.withDescription("Port range for new ports."), Options.optional),
  exclude: Options.text("exclude").pipe(
    Options.withDescription("A port or range never to hand out (repeatable)."),
    Options.repeated
  ),
  project: Options.text("project").pipe(Options.withDescription("Project label (sticky)."), Options.optional),
  task: Options.text("task").pipe(Options.withDescription("Task label (sticky)."), Options.optional),
  force: flag("force", "Take preferred ports even if excluded or in use, relabel, move."),
  allowUnrelated: flag("allow-unrelated", "Act on a project directory unrelated to the working directory."),
  noOccupancyCheck: flag("no-occupancy-check", "Do not probe whether something already uses a port.").pipe(
    Options.withAlias("skip-occupancy-check")
  ),
  ...control
}

/** `keel port autoreserve`'s parsed input. */
export type AutoreserveInput = Command.Command.ParseConfig<typeof autoreserveConfig>

/** `keel port autoreserve`: the group of the nearest `trop.yaml`, for its directory. */
export const autoreserve = Command.make("autoreserve", autoreserveConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.autoreserve(input))
).pipe(
  Command.withDescription(
    "Reserve the services of the nearest trop.yaml (this directory or a parent) for its directory; print them as exports."
  )
)

const listProjectsConfig = { globals: Globals.options }

/** `keel port list-projects`. */
export const listProjects = Command.make("list-projects", listProjectsConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.listProjects())
).pipe(Command.withDescription("List the projects that hold reservations, with how many each."))

const cleanupByName = (name: string, description: string, extra: "days" | "none") => {
  const config = {
    globals: Globals.options,
    dryRun,
    days: Options.integer("days").pipe(
      Options.withDescription(
        "Reservations unused for this many days (default: cleanup.expire_after_days, else 30)."
      ),
      Options.optional
    )
  }
  return Command.make(name, config, (input) =>
    Leaf.lazy(input.globals, handlers, (run) =>
      run.clean(
        name === "prune" ? "prune" : name === "expire" ? "expire" : "autoclean",
        input,
        extra === "days"
      )
    )
  ).pipe(Command.withDescription(description))
}

/** `keel port prune`: reservations whose directory is gone. */
export const prune = cleanupByName("prune", "Remove reservations whose directory no longer exists.", "none")
/** `keel port expire --days N`: reservations unused for N days. */
export const expire = cleanupByName("expire", "Remove reservations not used for --days days.", "days")
/** `keel port autoclean`: prune and expire together. */
export const autoclean = cleanupByName(
  "autoclean",
  "prune and expire in one go (and reservations past their ttl).",
  "days"
)

const migrateConfig = {
  globals: Globals.options,
  from: Options.text("from").pipe(Options.withDescription("The old directory (it need not exist any more).")),
  to: Options.text("to").pipe(Options.withDescription("The new directory.")),
  recursive: flag("recursive", "Also move every reservation below --from.").pipe(Options.withAlias("r")),
  overwrite: flag("overwrite", "Replace reservations already at the destination."),
  dryRun
}

/** `keel port migrate`'s parsed input. */
export type MigrateInput = Command.Command.ParseConfig<typeof migrateConfig>

/** `keel port migrate`. */
export const migrate = Command.make("migrate", migrateConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.migrate(input))
).pipe(
  Command.withDescription("Move reservations from one directory to another in one transaction, ports kept.")
)

const assertReservationConfig = {
  globals: Globals.options,
  path: Options.text("path").pipe(
    Options.withAlias("p"),
    Options.withDescription("Project directory."),
    Options.optional
  ),
  tag: Options.text("tag").pipe(
    Options.withAlias("t"),
    Options.withDescription("Service tag."),
    Options.optional
  ),
  port: Options.integer("port").pipe(Options.withDescription("Also require this port."), Options.optional),
  not: flag("not", "Succeed only when there is no such reservation.")
}

/** `keel port assert-reservation`'s parsed input. */
export type AssertReservationInput = Command.Command.ParseConfig<typeof assertReservationConfig>

/** `keel port assert-reservation`. */
export const assertReservation = Command.make("assert-reservation", assertReservationConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.assertReservation(input))
).pipe(
  Command.withDescription("Exit 0 when (path, tag) is reserved (on --port, with that port); 1 otherwise.")
)

const portArg = Args.integer({ name: "port" })

const assertPortConfig = {
  globals: Globals.options,
  port: portArg,
  not: flag("not", "Succeed only when the port is free.")
}

/** `keel port assert-port`'s parsed input. */
export type AssertPortInput = Command.Command.ParseConfig<typeof assertPortConfig>

/** `keel port assert-port`. */
export const assertPort = Command.make("assert-port", assertPortConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.assertPort(input))
).pipe(Command.withDescription("Exit 0 when a reservation holds the port; 1 otherwise (--not: the reverse)."))

const portInfoConfig = {
  globals: Globals.options,
  port: portArg,
  includeOccupancy: flag(
    "include-occupancy",
    "Also probe whether something uses the port now (TCP and UDP)."
  ),
  noOccupancyCheck: flag(
    "no-occupancy-check",
    "With --include-occupancy: report the port as not checked."
  ).pipe(Options.withAlias("skip-occupancy-check")),
  ...probing
}

/** `keel port port-info`'s parsed input. */
export type PortInfoInput = Command.Command.ParseConfig<typeof portInfoConfig>

/** `keel port port-info`. */
export const portInfo = Command.make("port-info", portInfoConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.portInfo(input))
).pipe(Command.withDescription("Who holds a port, and (--include-occupancy) whether it is in use."))

const dataDirConfig = { globals: Globals.options }

/** `keel port show-data-dir`. */
export const showDataDir = Command.make("show-data-dir", dataDirConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.showDataDir())
).pipe(
  Command.withDescription(
    "Print where the registry lives: the database file's directory, or the DSN (redacted)."
  )
)

const assertDataDirConfig = {
  globals: Globals.options,
  not: flag("not", "Succeed only when there is no database file.")
}

/** `keel port assert-data-dir`'s parsed input. */
export type AssertDataDirInput = Command.Command.ParseConfig<typeof assertDataDirConfig>

/** `keel port assert-data-dir`. */
export const assertDataDir = Command.make("assert-data-dir", assertDataDirConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.assertDataDir(input))
).pipe(Command.withDescription("Exit 0 when the SQLite database file exists (--not: when it does not)."))

const validateConfig = {
  globals: Globals.options,
  file: Args.text({ name: "file" }).pipe(
    Args.withDescription("A trop.yaml, trop.local.yaml or user config.yaml.")
  )
}

/** `keel port validate`'s parsed input. */
export type ValidateInput = Command.Command.ParseConfig<typeof validateConfig>

/** `keel port validate`. */
export const validate = Command.make("validate", validateConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.validate(input))
).pipe(Command.withDescription("Check a config file; the first problem names the key."))

const initConfig = {
  globals: Globals.options,
  path: Options.text("path").pipe(
    Options.withAlias("p"),
    Options.withDescription("Where to write trop.yaml."),
    Options.optional
  ),
  project: Options.text("project").pipe(
    Options.withDescription("Project name (default: the directory's name)."),
    Options.optional
  ),
  force: flag("force", "Replace an existing trop.yaml.")
}

/** `keel port init`'s parsed input. */
export type InitInput = Command.Command.ParseConfig<typeof initConfig>

/** `keel port init`. */
export const init = Command.make("init", initConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.init(input))
).pipe(Command.withDescription("Write a starter trop.yaml (project, port range, one web service)."))

const globalFlag = flag("global", "Edit the user config instead of the project's trop.yaml.")

const excludeConfig = {
  globals: Globals.options,
  ports: Args.text({ name: "port-or-range" }).pipe(Args.atLeast(1)),
  global: globalFlag
}

/** `keel port exclude`'s parsed input. */
export type ExcludeInput = Command.Command.ParseConfig<typeof excludeConfig>

/** `keel port exclude`. */
export const exclude = Command.make("exclude", excludeConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.exclude(input))
).pipe(
  Command.withDescription(
    "Add ports or ranges (5432, 6000..6010) to excluded_ports of trop.yaml (--global: the user config)."
  )
)

const compactConfig = { globals: Globals.options, global: globalFlag }

/** `keel port compact-exclusions`'s parsed input. */
export type CompactInput = Command.Command.ParseConfig<typeof compactConfig>

/** `keel port compact-exclusions`. */
export const compactExclusions = Command.make("compact-exclusions", compactConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.compactExclusions(input))
).pipe(Command.withDescription("Merge overlapping and adjacent excluded_ports into the fewest ranges."))

const scanConfig = {
  globals: Globals.options,
  range: Options.text("range").pipe(
    Options.withDescription("The ports to scan (default: the configured range)."),
    Options.optional
  ),
  autoexclude: flag("autoexclude", "Add every occupied, unreserved port to excluded_ports."),
  global: globalFlag,
  ...probing
}

/** `keel port scan`'s parsed input. */
export type ScanInput = Command.Command.ParseConfig<typeof scanConfig>

/** `keel port scan`. */
export const scan = Command.make("scan", scanConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.scan(input))
).pipe(
  Command.withDescription("List the ports of the range something listens on, and whether they are reserved.")
)

/** Every trop command, for `keel port`'s subcommands. */
export const commands = [
  autoreserve,
  listProjects,
  prune,
  expire,
  autoclean,
  migrate,
  assertReservation,
  assertPort,
  portInfo,
  showDataDir,
  assertDataDir,
  validate,
  init,
  exclude,
  compactExclusions,
  scan
] as const
