/**
 * The `keel` binary's entry point. A help request that a stored page answers (`HelpPage.asked`) is
 * printed from `dist/help.json`; a `keel port reserve` command line that `FastPath.recognise`
 * recognises (or whose only fault is an unknown option) runs through the fast path's bundle (`dist/fast.cjs`, loaded with V8's code cache);
 * every other runs the full command line (`Program.run`). Either way the process exits with the
 * command's code. The first two load neither `@effect/cli` nor the command tree (cold start).
 */
import { existsSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import * as CodeCache from "./CodeCache.js"
import * as FastPath from "./FastPath.js"
import * as HelpPage from "./HelpPage.js"

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

const help = storedHelp()
const fastBundle = beside("fast.cjs")

if (help !== undefined) {
  process.stdout.write(help)
} else if (FastPath.recognise(process.argv, process.env) !== undefined && existsSync(fastBundle)) {
  CodeCache.run(fastBundle)
} else {
  const [Process, Program] = await Promise.all([import("./Process.js"), import("./Program.js")])
  Process.runMain(Program.run(process.argv))
}
