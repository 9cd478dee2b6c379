/**
 * One `keel` invocation as the binary runs it: the command line over Node's filesystem, path and
 * terminal, warnings and errors logged to stderr (stdout carries only results). `main.ts` runs it
 * as the process; tests run it in-process with their own `Output.Streams` and `Input.Stdin`.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeTerminal from "@effect/platform-node/NodeTerminal"
import { Cause, Context, Effect, FiberRef, FiberRefs, Layer, Logger, LogLevel } from "effect"
import * as Cli from "./Cli.js"
import * as Failure from "./Failure.js"
import * as Output from "./Output.js"

/** Log lines on the running command's stderr, `keel: <level>: <message>`, one line each, scrubbed of secrets. */
export const logger = Logger.make(({ logLevel, message, cause, context }) => {
  const parts = (Array.isArray(message) ? message : [message]).map((part) =>
    typeof part === "string" ? part : Failure.oneLine(JSON.stringify(part) ?? String(part))
  )
  const reason = Cause.isEmpty(cause) ? "" : ` (${Failure.oneLine(Cause.pretty(cause)).slice(0, 2000)})`
  const secrets = Failure.secretsOf(undefined, process.env)
  const streams = Context.get(FiberRefs.getOrDefault(context, FiberRef.currentContext), Output.Streams)
  streams.stderr(
    `keel: ${logLevel.label.toLowerCase()}: ${Failure.oneLine(Failure.redact(parts.join(" ") + reason, secrets))}\n`
  )
})

/** Node's filesystem, path and terminal, and `logger` in place of Effect's default logger. */
export const layer = Layer.mergeAll(
  NodeFileSystem.layer,
  NodePath.layer,
  NodeTerminal.layer,
  Logger.replace(Logger.defaultLogger, logger)
)

/** Runs one invocation (`argv` as `process.argv`) to its exit code; see `Cli.run`. */
export const run = (argv: ReadonlyArray<string>): Effect.Effect<number> =>
  Cli.run(argv).pipe(Logger.withMinimumLogLevel(LogLevel.Warning), Effect.provide(layer))
