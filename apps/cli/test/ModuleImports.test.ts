import { spawnSync } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { afterEach, describe, expect, it } from "@effect/vitest"

const repository = fileURLToPath(new URL("../../..", import.meta.url))
const script = join(repository, "scripts", "check-imports.mjs")
const made: Array<string> = []

/** `node scripts/check-imports.mjs ROOT` over a repository holding `files` (path → text). */
const check = (files: Record<string, string>) => {
  const root = mkdtempSync(join(tmpdir(), "keel-imports-"))
  made.push(root)
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, ".."), { recursive: true })
    writeFileSync(join(root, path), text)
  }
  return spawnSync(process.execPath, [script, root], { encoding: "utf8" })
}

afterEach(() => {
  for (const root of made.splice(0)) rmSync(root, { recursive: true, force: true })
})

// A value imported from the index of `effect` (or an `@effect/*` or `@keel/*` package) brings the whole
// namespace of each name into a bundle: the cold start of `keel port reserve` paid for every
// schema class. `pnpm check` runs the script; this pins what it refuses.
describe("scripts/check-imports.mjs", () => {
  it("refuses a value imported from the index of effect, of an @effect or of a @keel package, in src only", () => {
    const result = check({
      "packages/a/src/A.ts": 'import { Effect, type Scope } from "effect"\n',
      "apps/b/src/B.ts": 'import * as Sql from "@effect/sql"\n',
      "apps/c/src/C.ts": 'import {\n  HttpApi,\n  type HttpApp\n} from "@effect/platform"\n',
      "packages/d/src/D.ts": 'import { Backend } from "@keel/sql"\n',
      "packages/a/test/A.test.ts": 'import { Effect } from "effect"\n'
    })
    expect(result.status).toBe(1)
    expect(result.stderr).toContain('packages/a/src/A.ts:1: import { Effect, type Scope } from "effect"')
    expect(result.stderr).toContain('apps/b/src/B.ts:1: import * as Sql from "@effect/sql"')
    expect(result.stderr).toContain("apps/c/src/C.ts:1:")
    expect(result.stderr).toContain('packages/d/src/D.ts:1: import { Backend } from "@keel/sql"')
    expect(result.stderr).not.toContain("A.test.ts")
  })

  it("accepts module paths and type-only imports", () => {
    const result = check({
      "packages/a/src/A.ts": [
        'import * as Effect from "effect/Effect"',
        'import { pipe } from "effect/Function"',
        'import type { Scope } from "effect"',
        'import { type Duration, type Option } from "effect"',
        'import * as HttpApi from "@effect/platform/HttpApi"',
        'import * as Backend from "@keel/sql/Backend"',
        'import type { Transaction } from "@keel/sql"'
      ].join("\n")
    })
    expect(result.stderr).toBe("")
    expect(result.status).toBe(0)
  })

  it("passes on this repository", () => {
    const result = spawnSync(process.execPath, [script], { encoding: "utf8" })
    expect(result.stderr).toBe("")
    expect(result.status).toBe(0)
  })
})
