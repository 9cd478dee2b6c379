import { existsSync, readdirSync } from "node:fs"
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
    pool: "forks"
  }
})
