/**
 * One `keel` invocation from its command line to its exit code, whichever way it is parsed: the
 * full command line (`Cli.ts`) or the fast path (`Fast.ts`). Both take `--log-level` out first (see
 * `Log.takeLevelFlag`), put the logging settings it and the environment give in force, and end the
 * same way: the code recorded in `process.exitCode`, failures that no command reported printed as
 * one line on stderr, an interruption ending in 130 or, after a clean shutdown, 0.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Ref from "effect/Ref"
import * as ErrorLine from "./ErrorLine.js"
import * as Failure from "./Failure.js"
import * as Log from "./Log.js"
import * as Output from "./Output.js"
import { Shutdown } from "./Shutdown.js"

/** The exit code of `run`'s last invocation, kept where an interruption cannot lose it. */
const record = (code: number): Effect.Effect<number> =>
  Effect.sync(() => {
    process.exitCode = code
    return code
  })

/**
 * `body` given the command line without `--log-level` and the logging settings in force (it
 * installs them itself, around what should log through keel's logger), with the flag's level as
 * `KEEL_LOG_LEVEL` wherever configuration is read.
 */
const logged = <E, R>(
  argv: ReadonlyArray<string>,
  body: (argv: ReadonlyArray<string>, settings: Log.Settings) => Effect.Effect<void, E, R>
) =>
  Effect.gen(function* () {
    const taken = yield* Log.takeLevelFlag(argv)
    yield* Log.withLevelFlag(taken.level)(
      Effect.flatMap(Log.settings, (settings) => body(taken.argv, settings))
    )
  })

/**
 * Runs one invocation (`argv` as `process.argv`) to its exit code, also stored in
 * `process.exitCode`: a SIGINT/SIGTERM interrupts the main fiber, and its final `Exit` then says
 * "interrupted" even when the command shut down cleanly, so the entry point reads the code there.
 * Failures inside a command were reported by the command (`Failure.Reported`); any other failure
 * is reported here. An interruption ends the command — its scopes close, releasing what it held —
 * and yields 130, or 0 when a long-running command reports a clean shutdown (`Shutdown`).
 */
export const run = <E, R>(
  argv: ReadonlyArray<string>,
  body: (argv: ReadonlyArray<string>, settings: Log.Settings) => Effect.Effect<void, E, R>
): Effect.Effect<number, never, Exclude<R, Shutdown>> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function* () {
      const clean = yield* Ref.make(false)
      const exit = yield* Effect.exit(restore(Effect.provideService(logged(argv, body), Shutdown, clean)))
      if (Exit.isSuccess(exit)) return yield* record(Failure.ExitCode.success)
      if (Cause.isInterruptedOnly(exit.cause)) {
        return yield* record(
          (yield* Ref.get(clean)) ? Failure.ExitCode.success : Failure.ExitCode.interrupted
        )
      }
      const report = Failure.describeCause(exit.cause)
      if (report.tag === "Reported") return yield* record(report.exitCode)
      yield* Output.stderr(ErrorLine.lineFor(report, argv, process.env))
      return yield* record(report.exitCode)
    })
  )
