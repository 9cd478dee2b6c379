/**
 * The `keel` command tree and how one invocation ends: the exit code of `run(argv)`.
 *
 * Subcommands provide their own layers (see `Layers.ts`), so parsing, `--help`, `--version`,
 * `--completions` and usage errors never open the database.
 */
import * as Command from "@effect/cli/Command"
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as Path from "@effect/platform/Path"
import type * as Terminal from "@effect/platform/Terminal"
import { Cause, Effect, Exit, HashMap, Ref } from "effect"
import { cursor } from "./commands/Cursor.js"
import { db } from "./commands/Db.js"
import { port } from "./commands/Port.js"
import { dead, queueCommand } from "./commands/Queue.js"
import { schedule } from "./commands/Schedule.js"
import { serve } from "./commands/Serve.js"
import * as Failure from "./Failure.js"
import { options, RootGlobals } from "./Globals.js"
import * as Input from "./Input.js"
import * as Log from "./Log.js"
import * as Output from "./Output.js"
import { Shutdown } from "./Shutdown.js"
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

/**
 * The command line parsed and run: `--log-level` taken out first (see `Log.takeLevelFlag`), the
 * logging settings it and the environment give in force, tracing when configured (`Tracing`),
 * then `@effect/cli`.
 */
const invocation = (argv: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const taken = yield* Log.takeLevelFlag(argv)
    const run = Effect.gen(function* () {
      const settings = yield* Log.settings
      const colour = yield* Output.colour
      yield* wizardNeedsTerminal(taken.argv)
      yield* cli(helpRequest(taken.argv)).pipe(
        cliPrinting(colour),
        Tracing.traced,
        Log.withSettings(settings)
      )
    })
    yield* Log.withLevelFlag(taken.level)(run)
  })

/** The value of `--db` in raw arguments (for redacting a usage error that echoes it). */
const rawDb = (argv: ReadonlyArray<string>): string | undefined => {
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index] ?? ""
    if (arg === "--db") return argv[index + 1]
    if (arg.startsWith("--db=")) return arg.slice("--db=".length)
  }
  return undefined
}

/** The exit code of `run`'s last invocation, kept where an interruption cannot lose it. */
const record = (code: number): Effect.Effect<number> =>
  Effect.sync(() => {
    process.exitCode = code
    return code
  })

/**
 * Runs one invocation (`argv` as `process.argv`) to its exit code, also stored in
 * `process.exitCode`: a SIGINT/SIGTERM interrupts the main fiber, and its final `Exit` then says
 * "interrupted" even when the command shut down cleanly, so the entry point reads the code there.
 * Failures inside a command were reported by the command; usage errors are reported here. An
 * interruption ends the command — its scopes close, releasing what it held — and yields 130,
 * or 0 when a long-running command reports a clean shutdown (`Shutdown`).
 */
export const run = (
  argv: ReadonlyArray<string>
): Effect.Effect<number, never, FileSystem.FileSystem | Path.Path | Terminal.Terminal> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function* () {
      const clean = yield* Ref.make(false)
      const exit = yield* Effect.exit(restore(Effect.provideService(invocation(argv), Shutdown, clean)))
      if (Exit.isSuccess(exit)) return yield* record(Failure.ExitCode.success)
      if (Cause.isInterruptedOnly(exit.cause)) {
        return yield* record(
          (yield* Ref.get(clean)) ? Failure.ExitCode.success : Failure.ExitCode.interrupted
        )
      }
      const report = Failure.describeCause(exit.cause)
      if (report.tag === "Reported") return yield* record(report.exitCode)
      const secrets = Failure.secretsOf(rawDb(argv), process.env)
      const json = argv.includes("--json")
      yield* Output.stderr(Failure.render(report, { json, verbose: argv.includes("--verbose"), secrets }))
      return yield* record(report.exitCode)
    })
  )
