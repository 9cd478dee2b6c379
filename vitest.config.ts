import { existsSync, readdirSync } from "node:fs"
import { availableParallelism } from "node:os"
import { basename, join } from "node:path"
import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

// Paths are taken from this file, not the working directory: a package's own `test` script
// (`vitest run --project <name>`, run from the package's directory) finds this config by
// searching upwards and must see the same projects as the root's `vitest run`.
const root = fileURLToPath(new URL(".", import.meta.url))

// One vitest project per workspace package that has a test/ folder, named after the folder:
// every package under packages/ and apps/, and `smoke` (the packed packages outside the workspace).
const packageDirs = [
  ...["packages", "apps"].flatMap((group) =>
    existsSync(join(root, group)) ? readdirSync(join(root, group)).map((name) => join(group, name)) : []
  ),
  "smoke"
]
const projects = packageDirs
  .filter((dir) => existsSync(join(root, dir, "test")))
  .map((dir) => ({
    extends: true as const,
    test: { name: basename(dir), root: join(root, dir), include: ["test/**/*.test.ts"] }
  }))

export default defineConfig({
  test: {
    projects,
    testTimeout: 60_000,
    hookTimeout: 180_000,
    pool: "forks",
    // One test file per core. Vitest's default is one fewer than the cores, to leave one for its
    // own process: on CI's 2 cores that is a single worker, every file in turn, and a core idle
    // while a file waits on its children, its database or a timer — which most of ours do.
    maxWorkers: availableParallelism()
  }
})
