/**
 * `--help` without `@effect/cli`. The build (`scripts/build.mjs`, through `HelpPages.ts`) writes
 * every command's help page, as the full command line prints it without colour, to
 * `dist/help.json`; `main.ts` prints from there when `asked` says a plain page is wanted. Whatever
 * could change the output — colour on a terminal, `--log-level`, the logging or tracing settings,
 * `--wizard` — goes to the full command line instead. This module imports nothing.
 */

/** Help pages by command path: `""` for `keel`, `"port reserve"` for `keel port reserve`. */
export type Pages = Readonly<Record<string, string>>

const helpFlags = ["--help", "-h"]

/** Settings the full command line reads before it prints help: set, they go there. */
const settingVariables = [
  "KEEL_LOG_LEVEL",
  "KEEL_LOG_FORMAT",
  "OTEL_EXPORTER_OTLP_ENDPOINT",
  "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
]

/** `KEEL_CLI_FAST_PATH=0` turns this off too (see `FastPath.switchVariable`). */
const switchVariable = "KEEL_CLI_FAST_PATH"

/** The arguments before any `--` (as `process.argv` without node and the script). */
const options = (argv: ReadonlyArray<string>): ReadonlyArray<string> => {
  const args = argv.slice(2)
  const end = args.indexOf("--")
  return end === -1 ? args : args.slice(0, end)
}

/**
 * Whether `argv` (as `process.argv`) asks for help that a stored page answers exactly: `--help`
 * or `-h` before any `--`, no `--log-level` or `--wizard`, plain output (stdout no terminal, or
 * `NO_COLOR` set), and none of the logging or tracing settings in `env`.
 */
export const asked = (
  argv: ReadonlyArray<string>,
  env: Readonly<Record<string, string | undefined>>,
  stdoutIsTerminal: boolean
): boolean => {
  if (env[switchVariable] === "0") return false
  const args = options(argv)
  if (!args.some((arg) => helpFlags.includes(arg))) return false
  if (args.some((arg) => arg === "--wizard" || arg === "--log-level" || arg.startsWith("--log-level="))) {
    return false
  }
  if (settingVariables.some((name) => env[name] !== undefined)) return false
  return !stdoutIsTerminal || (env.NO_COLOR ?? "") !== ""
}

/**
 * The command path help is asked for, as `Cli.helpRequest` finds it: each argument that names a
 * subcommand of the path so far extends it, whatever stands between them.
 */
export const path = (argv: ReadonlyArray<string>, commands: ReadonlyArray<string>): string => {
  const known = new Set(commands)
  let at = ""
  for (const arg of options(argv)) {
    if (arg.includes(" ")) continue
    const next = at === "" ? arg : `${at} ${arg}`
    if (known.has(next)) at = next
  }
  return at
}

/** The stored page for `argv`'s help request, if there is one. */
export const find = (argv: ReadonlyArray<string>, pages: Pages): string | undefined =>
  pages[path(argv, Object.keys(pages))]
