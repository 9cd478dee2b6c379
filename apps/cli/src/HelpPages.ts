/**
 * Every command's help page as `keel … --help` prints it on a pipe (no colour), for the build to
 * store in `dist/help.json` (see `HelpPage.ts`): each page is what the full command line writes
 * to stdout, produced by running it (`Cli.run`) in-process with its output captured.
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as Path from "@effect/platform/Path"
import type * as Terminal from "@effect/platform/Terminal"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Cli from "./Cli.js"
import type * as HelpPage from "./HelpPage.js"
import * as Output from "./Output.js"

/** A help page that did not come out as one: the command failed or printed on stderr. */
export class PageFailed extends Error {}

const page = (
  path: ReadonlyArray<string>
): Effect.Effect<string, PageFailed, FileSystem.FileSystem | Path.Path | Terminal.Terminal> =>
  Effect.gen(function* () {
    let stdout = ""
    let stderr = ""
    const streams: Output.Writers = {
      stdout: (text) => {
        stdout += text
      },
      stderr: (text) => {
        stderr += text
      },
      stdoutIsTerminal: () => false
    }
    const console = yield* Effect.console
    const capture = (...parts: ReadonlyArray<unknown>) =>
      Effect.sync(() => {
        stdout += `${parts.map(String).join(" ")}\n`
      })
    const code = yield* Cli.run(["node", "keel", ...path, "--help"]).pipe(
      Effect.provideService(Output.Streams, streams),
      Effect.withConsole({ ...console, log: capture, info: capture }),
      // No environment: the pages are what a plain environment prints.
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map()))
    )
    process.exitCode = undefined
    if (code !== 0 || stderr !== "" || stdout === "") {
      return yield* Effect.fail(new PageFailed(`keel ${path.join(" ")} --help exited ${code}: ${stderr}`))
    }
    return stdout
  })

/** The help page of every command, keyed by its path (`""` for `keel`, `"port reserve"`…). */
export const pages: Effect.Effect<
  HelpPage.Pages,
  PageFailed,
  FileSystem.FileSystem | Path.Path | Terminal.Terminal
> = Effect.map(
  Effect.forEach(Cli.commandPaths, (path) =>
    Effect.map(page(path), (text) => [path.join(" "), text] as const)
  ),
  (entries) => Object.fromEntries(entries)
)
