/**
 * The fast path's program (bundled on its own as `dist/fast.cjs`, see `scripts/build.mjs`): a
 * `keel port reserve` command line that `FastPath.reserve` recognised, run as the full command
 * line would run it — the same handler (`handlers/Port.ts`) under `Leaf.run`, the same logging,
 * failure reports and exit codes (`Invocation.run`) — without loading `@effect/cli`, the other
 * commands or their services. `FastMain.ts` is its entry point; `main.ts` loads that only for such a
 * command line.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type { ReserveInput } from "./commands/Port.js"
import * as Failure from "./Failure.js"
import * as FastPath from "./FastPath.js"
import * as GlobalOptions from "./GlobalOptions.js"
import { reserve } from "./handlers/Port.js"
import * as Invocation from "./Invocation.js"
import * as Leaf from "./Leaf.js"
import * as Log from "./Log.js"

/** `flags` as `@effect/cli` would have parsed them for `keel port reserve`. */
export const reserveInput = (flags: FastPath.ReserveFlags): ReserveInput => ({
  globals: {
    db: Option.map(Option.fromNullable(flags.db), Redacted.make),
    json: flags.json,
    quiet: flags.quiet,
    verbose: flags.verbose
  },
  path: Option.fromNullable(flags.path),
  tag: Option.fromNullable(flags.tag),
  preferred: Option.fromNullable(flags.preferred),
  range: Option.fromNullable(flags.range),
  exclude: [...flags.exclude],
  project: Option.fromNullable(flags.project),
  task: Option.fromNullable(flags.task),
  ttl: Option.fromNullable(flags.ttl),
  force: flags.force,
  allowUnrelated: flags.allowUnrelated,
  noOccupancyCheck: flags.noOccupancyCheck
})

/**
 * Runs `keel port reserve` (`argv` as `process.argv`, recognised by `FastPath.recognise`) to its
 * exit code, as `Cli.run` would: no flag before the subcommand, so the root's globals are `none`.
 * An unknown argument is the usage error `@effect/cli` reports (exit 2).
 */
export const run = (argv: ReadonlyArray<string>): Effect.Effect<number> =>
  Invocation.run(argv, (args, settings) =>
    Effect.gen(function* () {
      const recognised = FastPath.recognise(args, process.env)
      if (recognised === undefined) return yield* Effect.dieMessage("not a command line of the fast path")
      if (recognised._tag === "UnknownArgument") {
        return yield* new Failure.UsageError({
          kind: "InvalidValue",
          text: FastPath.unknownArgumentText(recognised.argument)
        })
      }
      const input = reserveInput(recognised.flags)
      yield* Leaf.run(input.globals, reserve(input)).pipe(
        Effect.provideService(GlobalOptions.RootGlobals, GlobalOptions.none),
        Log.withSettings(settings)
      )
    })
  )
