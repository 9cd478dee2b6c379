/**
 * Runs an invocation as the process (`NodeRuntime.runMain`) and exits with its code. Both entry
 * points use it: the full command line (`main.ts`) and the fast path (`Fast.ts`).
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import type { Effect } from "effect"
import * as Cause from "effect/Cause"
import * as Exit from "effect/Exit"
import * as Failure from "./Failure.js"

/** Runs `invocation` (see `Invocation.run`) as the process, which then exits with its code. */
export const runMain = (invocation: Effect.Effect<number>): void =>
  NodeRuntime.runMain(invocation, {
    disableErrorReporting: true,
    disablePrettyLogger: true,
    // `Invocation.run` records the exit code in `process.exitCode`: after a signal the main fiber
    // ends "interrupted" whatever the command did, so its `Exit` cannot carry the code.
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
