/**
 * The builds the browser suite needs, each made once per vitest run: the dashboard's assets
 * (`apps/ui/dist`, served by the server at /ui) and the `keel` binary (`apps/cli/dist`). Test files
 * run in forks of one vitest process, so the first file to take a build's lock (keyed by that
 * parent's pid) runs its script and the others wait for its stamp. The stamps are named as in the
 * CLI's own suite (`apps/cli/test/support/Keel.ts`), so a run that includes both builds the CLI once.
 */
import { execFile } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"

const apps = fileURLToPath(new URL("../../..", import.meta.url))

/** The dashboard package's directory. */
export const uiRoot = join(apps, "ui")

/** The CLI package's directory. */
export const cliRoot = join(apps, "cli")

/** How long a file waits for another file's build (a loaded CI box builds the CLI slowly). */
export const buildTimeoutMs = 480_000

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Runs `root/scripts/build.mjs` into `root/dist` once per vitest run; its stdout from this run. */
export const ensureBuilt = async (root: string): Promise<string> => {
  const dist = join(root, "dist")
  const run = String(process.ppid)
  const stamp = join(dist, `.built-${run}`)
  const failed = join(dist, `.failed-${run}`)
  const lock = join(dist, `.building-${run}`)
  if (existsSync(stamp)) return readFileSync(stamp, "utf8")
  mkdirSync(dist, { recursive: true })
  let owner = false
  try {
    mkdirSync(lock)
    owner = true
  } catch {
    owner = false
  }
  if (owner) {
    try {
      const { stdout } = await promisify(execFile)(process.execPath, [join(root, "scripts", "build.mjs")], {
        cwd: root
      })
      for (const name of readdirSync(dist)) {
        if (name.startsWith(".built-") || name.startsWith(".failed-"))
          rmSync(join(dist, name), { force: true })
      }
      writeFileSync(stamp, stdout)
      return stdout
    } catch (error) {
      writeFileSync(failed, error instanceof Error ? error.message : String(error))
      throw error
    } finally {
      rmSync(lock, { recursive: true, force: true })
    }
  }
  const deadline = Date.now() + buildTimeoutMs
  while (!existsSync(stamp)) {
    if (existsSync(failed)) throw new Error(`the build of ${root} failed: ${readFileSync(failed, "utf8")}`)
    if (Date.now() > deadline) throw new Error(`timed out waiting for the build of ${root}`)
    await sleep(100)
  }
  return readFileSync(stamp, "utf8")
}
