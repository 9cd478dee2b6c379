/**
 * The `keel` binary's entry point: runs the command line with Node's filesystem, path and
 * terminal, logs to stderr (stdout carries only results), and exits with the command's code.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeTerminal from "@effect/platform-node/NodeTerminal"
import * as Dsn from "@keel/sql/Dsn"
import { Cause, Effect, Exit, Layer, Logger, LogLevel } from "effect"
import * as Cli from "./Cli.js"
import * as Failure from "./Failure.js"

/** Log lines on stderr, `keel: <level>: <message>`, scrubbed of secrets. */
const stderrLogger = Logger.make(({ logLevel, message, cause }) => {
  const parts = (Array.isArray(message) ? message : [message]).map((part) =>
    typeof part === "string" ? part : Failure.oneLine(JSON.stringify(part) ?? String(part))
  )
  const reason = Cause.isEmpty(cause) ? "" : ` (${Failure.oneLine(Cause.pretty(cause)).slice(0, 2000)})`
  const secrets = Failure.secretsOf(undefined, process.env)
  process.stderr.write(
    `keel: ${logLevel.label.toLowerCase()}: ${Dsn.scrub(parts.join(" ") + reason, secrets)}\n`
  )
})

const platform = Layer.mergeAll(
  NodeFileSystem.layer,
  NodePath.layer,
  NodeTerminal.layer,
  Logger.replace(Logger.defaultLogger, stderrLogger)
)

Cli.run(process.argv).pipe(
  Logger.withMinimumLogLevel(LogLevel.Warning),
  Effect.provide(platform),
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
