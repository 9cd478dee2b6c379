/**
 * The `keel` binary's entry point, bundled as CommonJS (`dist/keel.cjs`, which `bin/keel.cjs`
 * loads): an ES module entry would start Node's ES module loader, about 5 ms of every cold start.
 * A help request that a stored page answers (`HelpPage.asked`) is printed from `dist/help.json`; a
 * `keel port reserve` command line that `FastPath.recognise` recognises runs through the fast
 * path's bundle (`dist/fast.cjs`, loaded with V8's code cache under `OneShot`'s V8 settings), and
 * one whose only fault is an unknown option is answered here with `ErrorLine`'s usage error
 * (loading no Effect at all); every other runs the full command line (`Full.ts`, the ES module
 * `dist/keel.mjs`). Either way the process exits with the command's code. The first three load
 * neither `@effect/cli` nor the command tree (cold start).
 */
import { existsSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import * as CodeCache from "./CodeCache.js"
import * as FastPath from "./FastPath.js"
import * as HelpPage from "./HelpPage.js"
import * as OneShot from "./OneShot.js"

const beside = (name: string): string => fileURLToPath(new URL(`./${name}`, import.meta.url))

/** The stored help page `process.argv` asks for, if it asks for one and the pages were built. */
const storedHelp = (): string | undefined => {
  if (!HelpPage.asked(process.argv, process.env, process.stdout.isTTY === true)) return undefined
  let pages: unknown
  try {
    pages = JSON.parse(readFileSync(beside("help.json"), "utf8"))
  } catch {
    return undefined
  }
  if (typeof pages !== "object" || pages === null) return undefined
  const found: unknown = HelpPage.find(process.argv, { ...pages })
  return typeof found === "string" ? found : undefined
}

/**
 * The usage error of a `port reserve` command line the fast path recognised whose only fault is an
 * unknown option, as `Invocation.run` would write it — unless logging is configured (`--log-level`,
 * `KEEL_LOG_LEVEL`/`KEEL_LOG_FORMAT`), which the fast path reads and checks first.
 */
const unknownOption = async (recognised: FastPath.Recognised | undefined): Promise<string | undefined> => {
  if (recognised?._tag !== "UnknownArgument") return undefined
  if (process.argv.some((arg) => arg.startsWith("--log-level"))) return undefined
  if ((process.env.KEEL_LOG_LEVEL ?? "") !== "" || (process.env.KEEL_LOG_FORMAT ?? "") !== "")
    return undefined
  // Loaded only here: a reserve that runs does not pay for it.
  const ErrorLine = await import("./ErrorLine.js")
  const report = ErrorLine.usageReport("InvalidValue", FastPath.unknownArgumentText(recognised.argument))
  return ErrorLine.lineFor(report, process.argv, process.env)
}

const main = async (): Promise<void> => {
  const help = storedHelp()
  const fastBundle = beside("fast.cjs")
  const recognised = help === undefined ? FastPath.recognise(process.argv, process.env) : undefined
  const usage = await unknownOption(recognised)
  if (help !== undefined) {
    process.stdout.write(help)
  } else if (usage !== undefined) {
    process.stderr.write(usage)
    process.exitCode = 2 // the usage error's code (`ErrorLine.ExitCode.usage`)
  } else if (recognised !== undefined && existsSync(fastBundle)) {
    OneShot.apply()
    OneShot.loading()
    try {
      CodeCache.run(fastBundle)
    } finally {
      OneShot.loaded() // when the bundle failed before `FastMain.ts` undid it
    }
  } else {
    // The full program is its own bundle, loaded by URL (not bundled into this entry).
    const full: string = new URL("./keel.mjs", import.meta.url).href
    await import(full)
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`keel: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exitCode = 1
})
