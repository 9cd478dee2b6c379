#!/usr/bin/env node
// Usage: node scripts/check-imports.mjs [repository root]
// Bundles tree-shake Effect only through its module paths: `import { Schema } from "effect"` pulls
// the whole `Schema` namespace object (every schema class, built at load) into a bundle, where
// `import * as Schema from "effect/Schema"` keeps only what is used (the fast path of
// `keel port reserve` went from 917 to 535 KiB). Unbundled, Node loads every module of the index:
// `import { Effect } from "effect"` alone costs a process ~20 MiB of RSS more than
// `import * as Effect from "effect/Effect"` (the bench's Keel children load Effect that way). The
// `@effect/*` packages' indexes and Keel's own (`@keel/sql`, `@keel/reservation`…) are built the
// same way. Fails when a source file of a package, an app or the bench imports a value from the
// index of `effect`, of an `@effect/*` package or of a `@keel/*` package; type-only imports are
// erased and allowed.
import { existsSync, readFileSync } from "node:fs"
import { join, relative } from "node:path"
import { fileURLToPath } from "node:url"
import { lineOf, sourceFiles } from "./check-retry.mjs"

/** The repository checked: the first argument, else this script's repository. */
const root = process.argv[2] ?? fileURLToPath(new URL("..", import.meta.url))

/** Import declarations of `text` that take a value from such an index, with their 1-based lines. */
export const violations = (text) => {
  const found = []
  for (const match of text.matchAll(
    /^import\s+(type\s+)?(\{[^}]*\}|\*\s*as\s+\w+|\w+)\s*from\s*["'](?:effect|@effect\/[a-z-]+|@keel\/[a-z-]+)["']/gm
  )) {
    const [whole, typeOnly, clause] = match
    const braces = /^\{([^}]*)\}$/.exec(clause.trim())
    const valueNames =
      braces === null
        ? [clause.trim()]
        : braces[1]
            .split(",")
            .map((name) => name.trim())
            .filter((name) => name !== "" && !name.startsWith("type "))
    if (typeOnly === undefined && valueNames.length > 0)
      found.push({ line: lineOf(text, match.index), text: whole.replace(/\s+/g, " ") })
  }
  return found
}

const main = () => {
  let failed = false
  for (const top of ["packages", "apps", "bench"]) {
    if (!existsSync(join(root, top))) continue
    for (const path of sourceFiles(join(root, top))) {
      const name = relative(root, path)
      if (!name.split(/[\\/]/).includes("src")) continue
      for (const found of violations(readFileSync(path, "utf8"))) {
        failed = true
        console.error(
          `${name}:${found.line}: ${found.text} — import it from its module ("effect/<Module>", "@effect/<package>/<Module>", "@keel/<package>/<Module>")`
        )
      }
    }
  }
  if (failed) process.exit(1)
  console.log(
    "check-imports: no source imports a value from the index of effect, an @effect or a @keel package"
  )
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main()
