#!/usr/bin/env node
// DESIGN.md rule 1: retry lives in one module. Fails when Effect.retry (or a retry combinator
// imported from effect) appears in any TypeScript source other than packages/sql/src/Retry.ts.
import { readdirSync, readFileSync, statSync } from "node:fs"
import { join, relative, sep } from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))
const allowed = new Set([join("packages", "sql", "src", "Retry.ts")])
const skipped = new Set(["node_modules", "build", "dist", ".turbo", ".git", "results"])
const patterns = [
  /\b(Effect|Stream|STM|Micro)\s*\.\s*retry(OrElse)?\b/,
  /import\s*\{[^}]*\bretry(OrElse)?\b[^}]*\}\s*from\s*["']effect(\/(Effect|Stream|STM|Micro))?["']/s
]

/** Every `.ts` file below `dir`, skipping dependencies and build output. */
export const sourceFiles = (dir) =>
  readdirSync(dir).flatMap((name) => {
    if (skipped.has(name)) return []
    const path = join(dir, name)
    if (statSync(path).isDirectory()) return sourceFiles(path)
    return /\.(m|c)?tsx?$/.test(name) ? [path] : []
  })

/** The 1-based line of `text` that holds the character at `index`. */
export const lineOf = (text, index) => text.slice(0, index).split("\n").length

/** The offending lines of `text` (1-based line numbers), empty when it has none. */
export const violations = (text) => {
  const found = []
  for (const pattern of patterns) {
    const match = pattern.exec(text)
    if (match) found.push({ line: lineOf(text, match.index), text: match[0].split("\n")[0] })
  }
  return found
}

const main = () => {
  let failed = false
  for (const path of sourceFiles(root)) {
    const name = relative(root, path)
    if (allowed.has(name) || name.startsWith(`scripts${sep}`)) continue
    for (const found of violations(readFileSync(path, "utf8"))) {
      failed = true
      console.error(
        `${name}:${found.line}: "${found.text}" — retry only through @keel/sql Retry.run (DESIGN.md rule 1)`
      )
    }
  }
  if (failed) process.exit(1)
  console.log("check-retry: Effect.retry appears only in packages/sql/src/Retry.ts")
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main()
