/**
 * The `keel` command tree and how one invocation ends: the exit code of `run(argv)`.
 *
 * Subcommands provide their own layers (see `Layers.ts`), so parsing, `--help`, `--version`,
 * `--completions` and usage errors never open the database.
 */
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as ValidationError from "@effect/cli/ValidationError"
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as Path from "@effect/platform/Path"
import type * as Terminal from "@effect/platform/Terminal"
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import { cursor } from "./commands/Cursor.js"
import { db } from "./commands/Db.js"
import { port } from "./commands/Port.js"
import { dead, queueCommand } from "./commands/Queue.js"
import { schedule } from "./commands/Schedule.js"
import { serve } from "./commands/Serve.js"
import * as Failure from "./Failure.js"
import { options, RootGlobals } from "./Globals.js"
import * as Input from "./Input.js"
import * as Invocation from "./Invocation.js"
import * as Log from "./Log.js"
import * as Output from "./Output.js"
import * as Tracing from "./Tracing.js"
import { version } from "./Version.js"

/** `keel`: the root command. Its global options apply to every subcommand. */
export const keel = Command.make("keel", { globals: options }).pipe(
  Command.withDescription("Keel: durable queues, port reservations and stream cursors on SQL."),
  Command.withSubcommands([db, queueCommand, port, cursor, schedule, serve]),
  Command.provideSync(RootGlobals, (config) => config.globals)
)

const cli = Command.run(keel, { name: "keel", version })

/** The command tree by name, for finding which command a `--help` is about. */
interface HelpNode {
  readonly children: ReadonlyMap<string, HelpNode>
}

const node = <Name extends string, R, E, A>(
  command: Command.Command<Name, R, E, A>,
  nested: Readonly<Record<string, HelpNode>> = {}
): HelpNode => ({
  children: new Map(
    Array.from(HashMap.keys(Command.getSubcommands(command)), (name) => [
      name,
      nested[name] ?? { children: new Map() }
    ])
  )
})

const tree: HelpNode = node(keel, {
  db: node(db),
  queue: node(queueCommand, { dead: node(dead) }),
  port: node(port),
  cursor: node(cursor),
  schedule: node(schedule)
})

/** Every command's path below `keel` (`[]` for `keel` itself), parents before their children. */
export const commandPaths: ReadonlyArray<ReadonlyArray<string>> = (() => {
  const paths: Array<ReadonlyArray<string>> = []
  const walk = (at: HelpNode, path: ReadonlyArray<string>): void => {
    paths.push(path)
    for (const [name, child] of at.children) walk(child, [...path, name])
  }
  walk(tree, [])
  return paths
})()

/**
 * `@effect/cli` shows help only when `--help` follows the command path directly
 * (`keel port reserve --help`); with other flags around it (`keel port reserve --tag web --help`)
 * it reports a usage error. A command line asking for help is reduced to the command path and
 * `--help`, so every command's help works wherever the flag is.
 */
export const helpRequest = (argv: ReadonlyArray<string>): ReadonlyArray<string> => {
  const [executable = "node", script = "keel", ...args] = argv
  const end = args.indexOf("--")
  const options = end === -1 ? args : args.slice(0, end)
  if (!options.includes("--help") && !options.includes("-h")) return argv
  const path: Array<string> = []
  let at = tree
  for (const arg of options) {
    const next = at.children.get(arg)
    if (next !== undefined) {
      path.push(arg)
      at = next
    }
  }
  return [executable, script, ...path, "--help"]
}

const trailingNewlines = /\n+$/

/**
 * What `@effect/cli` prints, made fit for keel's streams. It prints usage errors itself, as
 * multi-line help on stderr; `keel` prints one line instead, so `Console.error` is silenced
 * (commands write through `Output`, never `Console.error`). Help, versions and completions
 * (`Console.log`) lose their ANSI styling when stdout is no terminal or `NO_COLOR` is set, and end
 * in exactly one newline (`--version` printed the version and a blank line).
 */
const cliPrinting =
  (colour: boolean) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.flatMap(Effect.console, (console) => {
      const tidy = (part: unknown): unknown =>
        typeof part === "string" ? (colour ? part : Output.plain(part)).replace(trailingNewlines, "") : part
      return Effect.withConsole(effect, {
        ...console,
        error: () => Effect.void,
        log: (...parts) => console.log(...parts.map(tidy)),
        info: (...parts) => console.info(...parts.map(tidy))
      })
    })

/**
 * `@effect/cli`'s `--wizard` (recognized anywhere on the command line) prompts on the terminal;
 * with stdin not a terminal (a pipe, /dev/null, a script) it would wait forever. It is refused
 * there as bad usage instead.
 */
const wizardNeedsTerminal = (argv: ReadonlyArray<string>): Effect.Effect<void, Failure.InvalidInput> =>
  argv.slice(2).includes("--wizard")
    ? Effect.flatMap(Input.Stdin, (stdin) =>
        stdin.isTerminal()
          ? Effect.void
          : Effect.fail(
              new Failure.InvalidInput({
                source: "--wizard",
                reason: "needs a terminal on stdin; give the command's arguments instead"
              })
            )
      )
    : Effect.void

/** `@effect/cli`'s usage error as `Failure.UsageError` (its text rendered here, where its help lives). */
const usageError = <E>(error: E | ValidationError.ValidationError): E | Failure.UsageError =>
  ValidationError.isValidationError(error)
    ? new Failure.UsageError({ kind: error._tag, text: HelpDoc.toAnsiText(error.error) })
    : error

/**
 * Runs one invocation (`argv` as `process.argv`) to its exit code, also stored in
 * `process.exitCode` (see `Invocation.run`): the command line parsed and run by `@effect/cli`
 * (help reduced to the command path, see `helpRequest`), traced when configured (`Tracing`),
 * logging through keel's logger. Usage errors are reported as one line with exit code 2.
 */
export const run = (
  argv: ReadonlyArray<string>
): Effect.Effect<number, never, FileSystem.FileSystem | Path.Path | Terminal.Terminal> =>
  Invocation.run(argv, (args, settings) =>
    Effect.gen(function* () {
      const colour = yield* Output.colour
      yield* wizardNeedsTerminal(args)
      yield* cli(helpRequest(args)).pipe(
        Effect.mapError(usageError),
        cliPrinting(colour),
        Tracing.traced,
        Log.withSettings(settings)
      )
    })
  )
