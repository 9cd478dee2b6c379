/**
 * The `keel` binary's entry point: runs the command line (`Program.run`) as the process and exits
 * with the command's code.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Exit } from "effect"
import * as Failure from "./Failure.js"
import * as Program from "./Program.js"

Program.run(process.argv).pipe(
  NodeRuntime.runMain({
    disableErrorReporting: true,
    disablePrettyLogger: true,
    // `Cli.run` records the exit code in `process.exitCode`: after a signal the main fiber ends
    // "interrupted" whatever the command did, so its `Exit` cannot carry the code.
    teardown: (exit, onExit) =>
      onExit(
        typeof process.exitCode === "number"
          ? process.exitCode
          : Exit.isSuccess(exit)
            ? Failure.ExitCode.success
            : Cause.isInterruptedOnly(exit.cause)
              ? Failure.ExitCode.interrupted
              : Failure.ExitCode.refused
      )
  })
)
