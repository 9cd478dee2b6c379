import { existsSync, readdirSync } from "node:fs"
import { join } from "node:path"
import { defineConfig } from "vitest/config"

// One vitest project per workspace package that has a test/ folder.
const projects = ["packages", "apps"].flatMap((group) =>
  existsSync(group)
    ? readdirSync(group)
        .filter((name) => existsSync(join(group, name, "test")))
        .map((name) => ({
          extends: true as const,
          test: { name, root: join(group, name), include: ["test/**/*.test.ts"] }
        }))
    : []
)

export default defineConfig({
  test: {
    projects,
    testTimeout: 60_000,
    hookTimeout: 180_000,
    pool: "forks"
  }
})
