/**
 * Which invocations skip `@effect/cli`. `PORT=$(keel port reserve --tag web)` runs once per service
 * in a start-up script, so its cold start matters: an invocation this module recognises runs the
 * same program (`Fast.ts`, loaded with V8's code cache by `CodeCache.ts`) without the command tree,
 * the help renderer or the other commands' services. Recognised, and read here, is only a command
 * line whose meaning is certain: `keel port reserve` followed by options this module knows, each
 * once, in the plain forms `--name VALUE` / `-n VALUE` / `--flag`, on SQLite, without tracing.
 * Anything else — help, an unknown or new option, `--name=value`, a value that looks like a flag,
 * a repeated option, a boolean flag followed by a boolean word, another backend — goes to the full
 * command line, which parses it and reports usage errors. One usage error is reported here too,
 * because scripts hit it (a flag of a newer or older keel): a command line that would be recognised
 * but for `--name` tokens no command knows is `@effect/cli`'s "Received unknown argument" for the
 * first of them (`unknownArgument`). This module imports nothing: `main.ts` asks it before loading
 * anything else.
 */

/** The values of a recognised `keel port reserve` command line (`--log-level` already taken out). */
export interface ReserveFlags {
  readonly db: string | undefined
  readonly json: boolean
  readonly quiet: boolean
  readonly verbose: boolean
  readonly path: string | undefined
  readonly tag: string | undefined
  readonly preferred: number | undefined
  readonly range: string | undefined
  readonly exclude: ReadonlyArray<string>
  readonly project: string | undefined
  readonly task: string | undefined
  readonly ttl: string | undefined
  readonly force: boolean
  readonly allowUnrelated: boolean
  readonly noOccupancyCheck: boolean
}

type Kind = "text" | "integer" | "boolean" | "repeated"

/** One option of `keel port reserve`: the field it fills, its names and what it takes. */
export interface OptionSpec {
  readonly key: keyof ReserveFlags
  readonly names: ReadonlyArray<string>
  readonly kind: Kind
}

/**
 * `keel port reserve`'s options (its own and the global ones) as `commands/Port.ts` declares them;
 * `ColdStart.test.ts` checks this list against the command's declaration.
 */
export const reserveOptions: ReadonlyArray<OptionSpec> = [
  { key: "db", names: ["--db"], kind: "text" },
  { key: "json", names: ["--json"], kind: "boolean" },
  { key: "quiet", names: ["--quiet", "-q"], kind: "boolean" },
  { key: "verbose", names: ["--verbose"], kind: "boolean" },
  { key: "path", names: ["--path", "-p"], kind: "text" },
  { key: "tag", names: ["--tag", "-t"], kind: "text" },
  { key: "preferred", names: ["--preferred"], kind: "integer" },
  { key: "range", names: ["--range"], kind: "text" },
  { key: "exclude", names: ["--exclude"], kind: "repeated" },
  { key: "project", names: ["--project"], kind: "text" },
  { key: "task", names: ["--task"], kind: "text" },
  { key: "ttl", names: ["--ttl"], kind: "text" },
  { key: "force", names: ["--force"], kind: "boolean" },
  { key: "allowUnrelated", names: ["--allow-unrelated"], kind: "boolean" },
  { key: "noOccupancyCheck", names: ["--no-occupancy-check", "--skip-occupancy-check"], kind: "boolean" }
]

const byName = new Map<string, OptionSpec>(
  reserveOptions.flatMap((option) => option.names.map((name) => [name, option] as const))
)

/** What `@effect/cli` reads as the value of a boolean flag when it follows the flag. */
const booleanWords = new Set(["true", "1", "y", "yes", "on", "false", "0", "n", "no", "off"])

/** A value taken as it is: not empty, not flag-like, no surrounding blanks. */
const plainValue = /^[^-\s](?:.*\S)?$/s

const integer = /^(?:0|[1-9][0-9]{0,8})$/

const logLevelFlag = "--log-level"

/** `args` without `--log-level LEVEL` / `--log-level=LEVEL` (as `Log.takeLevelFlag` takes them out). */
const withoutLogLevel = (args: ReadonlyArray<string>): ReadonlyArray<string> | undefined => {
  const kept: Array<string> = []
  for (let index = 0; index < args.length; index++) {
    const arg = args[index] ?? ""
    if (arg === logLevelFlag) {
      if (index + 1 >= args.length) return undefined
      index++
    } else if (!arg.startsWith(`${logLevelFlag}=`)) {
      kept.push(arg)
    }
  }
  return kept
}

/** The environment variables that would make the run differ from what the fast path does. */
const tracingVariables = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]

/** `KEEL_CLI_FAST_PATH=0` turns the fast path off (to compare it with the full command line). */
export const switchVariable = "KEEL_CLI_FAST_PATH"

const isSqlite = (dsn: string | undefined): boolean => dsn === undefined || /^sqlite:\S/.test(dsn)

/**
 * The options `keel port reserve` declares that the fast path does not run (trop's change control
 * and occupancy flags): a command line with one goes to the full command line. Listed so that none
 * is ever taken for an unknown option; `ColdStart.test.ts` checks that this list and
 * `reserveOptions` together are exactly the command's declaration.
 */
export const otherReserveOptions: ReadonlyArray<string> = [
  "--allow-project-change",
  "--allow-task-change",
  "--overwrite",
  "--ignore-exclusions",
  "--dry-run",
  "--check-all-interfaces",
  "--skip-ipv4",
  "--skip-ipv6",
  "--skip-tcp",
  "--skip-udp",
  "--disable-autoprune",
  "--disable-autoexpire"
]

/** Names `@effect/cli` gives every command, and `--log-level` (taken out before parsing). */
const builtIns = ["--help", "-h", "--wizard", "--version", "--completions", logLevelFlag]

/** A `--name[=value]` token that names no option of the command and none `@effect/cli` adds. */
const isUnknownName = (token: string): boolean => {
  if (!token.startsWith("--") || token === "--") return false
  const name = token.includes("=") ? token.slice(0, token.indexOf("=")) : token
  return !byName.has(name) && !otherReserveOptions.includes(name) && !builtIns.includes(name)
}

/** What the fast path makes of a command line. */
export type Recognised =
  | { readonly _tag: "Reserve"; readonly flags: ReserveFlags }
  | { readonly _tag: "UnknownArgument"; readonly argument: string }

/**
 * What the fast path does with `argv` (as `process.argv`): run a `keel port reserve` command line
 * exactly as the full one would, or report its first unknown `--name` as the full one would; else
 * undefined (the full command line). `env` decides the database (`KEEL_DB`) and whether tracing is on.
 */
export const recognise = (
  argv: ReadonlyArray<string>,
  env: Readonly<Record<string, string | undefined>>
): Recognised | undefined => {
  if (env[switchVariable] === "0") return undefined
  if (tracingVariables.some((name) => (env[name] ?? "") !== "")) return undefined
  const args = withoutLogLevel(argv.slice(2))
  if (args === undefined || args[0] !== "port" || args[1] !== "reserve") return undefined
  const seen = new Set<keyof ReserveFlags>()
  const texts = new Map<keyof ReserveFlags, string>()
  const exclude: Array<string> = []
  let unknown: string | undefined
  for (let index = 2; index < args.length; index++) {
    const token = args[index] ?? ""
    const option = byName.get(token)
    if (option === undefined) {
      if (!isUnknownName(token)) return undefined
      unknown ??= token
      continue
    }
    const { key, kind } = option
    if (seen.has(key) && kind !== "repeated") return undefined
    seen.add(key)
    const next = args[index + 1]
    if (kind === "boolean") {
      if (next !== undefined && booleanWords.has(next.toLowerCase())) return undefined
      continue
    }
    if (next === undefined || !plainValue.test(next)) return undefined
    if (kind === "integer" && !integer.test(next)) return undefined
    index++
    if (kind === "repeated") exclude.push(next)
    else texts.set(key, next)
  }
  const db = texts.get("db")
  if (!isSqlite(db ?? env.KEEL_DB)) return undefined
  if (unknown !== undefined) return { _tag: "UnknownArgument", argument: unknown }
  const preferred = texts.get("preferred")
  return {
    _tag: "Reserve",
    flags: {
      db,
      json: seen.has("json"),
      quiet: seen.has("quiet"),
      verbose: seen.has("verbose"),
      path: texts.get("path"),
      tag: texts.get("tag"),
      preferred: preferred === undefined ? undefined : Number(preferred),
      range: texts.get("range"),
      exclude,
      project: texts.get("project"),
      task: texts.get("task"),
      ttl: texts.get("ttl"),
      force: seen.has("force"),
      allowUnrelated: seen.has("allowUnrelated"),
      noOccupancyCheck: seen.has("noOccupancyCheck")
    }
  }
}

/**
 * The flags of `argv` (as `process.argv`) when it is a `keel port reserve` command line the fast
 * path runs exactly as the full one would, else undefined.
 */
export const reserve = (
  argv: ReadonlyArray<string>,
  env: Readonly<Record<string, string | undefined>>
): ReserveFlags | undefined => {
  const recognised = recognise(argv, env)
  return recognised?._tag === "Reserve" ? recognised.flags : undefined
}

/** The usage error `@effect/cli` reports for an unknown argument, as its text. */
export const unknownArgumentText = (argument: string): string => `Received unknown argument: '${argument}'`
