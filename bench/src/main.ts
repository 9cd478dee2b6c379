/**
 * `pnpm bench`: runs every suite in its own process (so peak RSS and JIT state do not leak
 * between suites) and stops at the first failure. `--quick` shrinks every suite.
 */
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
const suites = ["queue", "reservation", "cursor", "http"].filter((suite) =>
  existsSync(join(here, suite, "main.ts"))
)
const only = process.argv.find((arg) => arg.startsWith("--suite="))?.slice("--suite=".length)
const flags = process.argv.slice(2).filter((arg) => !arg.startsWith("--suite="))

for (const suite of only === undefined ? suites : [only]) {
  const result = spawnSync(process.execPath, ["--import", "tsx", join(here, suite, "main.ts"), ...flags], {
    stdio: "inherit"
  })
  if (result.status !== 0) {
    console.error(`bench suite ${suite} failed (exit ${result.status})`)
    process.exit(result.status ?? 1)
  }
}
