/**
 * One `keel` invocation as the binary runs it: the command line over Node's filesystem, path and
 * terminal (`Cli.run` installs keel's logger, see `Log.ts`). `main.ts` runs it
 * as the process; tests run it in-process with their own `Output.Streams` and `Input.Stdin`.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeTerminal from "@effect/platform-node/NodeTerminal"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Cli from "./Cli.js"

/** Node's filesystem, path and terminal. */
export const layer = Layer.mergeAll(NodeFileSystem.layer, NodePath.layer, NodeTerminal.layer)

/** Runs one invocation (`argv` as `process.argv`) to its exit code; see `Cli.run`. */
export const run = (argv: ReadonlyArray<string>): Effect.Effect<number> =>
  Cli.run(argv).pipe(Effect.provide(layer))
