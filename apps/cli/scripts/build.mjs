/**
 * Bundles the CLI with esbuild into dist/: one ESM entry, dist/keel.mjs, for Node 20. By default
 * each command's handlers (and the HTTP server of `keel serve`, 2.7 MB with its Swagger UI) go to
 * chunks in dist/chunks/ that load only when that command runs: a cold `keel port reserve` then
 * costs about 0.5 s of CPU instead of 0.8 s for the whole program in one file. `--single-file`
 * builds that one file instead. Native and file-locating packages stay external and resolve at
 * run time from apps/cli/node_modules (they are the only dependencies of @keel/cli for that reason:
 * everything else is bundled, so the packed CLI runs with no build step after `npm install`); the
 * `pg` driver is plain JavaScript and is bundled (its optional native binding stays external).
 *
 * Safe to run concurrently (test files build in parallel): every file is written to a temporary
 * name and renamed into place, and identical sources produce identical files.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { dirname, join, relative } from "node:path"
import { fileURLToPath } from "node:url"
import * as esbuild from "esbuild"

const singleFile = process.argv.includes("--single-file")
const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const outdir = join(root, "dist")

/** Packages that load native code or locate files next to themselves: never bundled. */
export const external = ["better-sqlite3", "libsql", "@libsql/*", "@electric-sql/pglite", "pg-native"]

const result = await esbuild.build({
  absWorkingDir: root,
  entryPoints: { keel: "src/main.ts" },
  outdir,
  bundle: true,
  splitting: !singleFile,
  format: "esm",
  platform: "node",
  target: "node20",
  external,
  minify: process.env.KEEL_BUILD_MINIFY !== "0",
  keepNames: false,
  legalComments: "none",
  chunkNames: "chunks/[name]-[hash]",
  entryNames: "[name]",
  outExtension: { ".js": ".mjs" },
  // Bundled CommonJS dependencies call require(): give the ES modules one.
  banner: {
    js: "import { createRequire as __keelRequire } from 'node:module'; const require = __keelRequire(import.meta.url);"
  },
  logLevel: "warning",
  write: false,
  metafile: true
})

const written = new Set()
for (const file of result.outputFiles) {
  mkdirSync(dirname(file.path), { recursive: true })
  const temporary = `${file.path}.${process.pid}.tmp`
  writeFileSync(temporary, file.contents)
  renameSync(temporary, file.path)
  written.add(file.path)
}
writeFileSync(join(outdir, `meta.${process.pid}.tmp`), JSON.stringify(result.metafile))
renameSync(join(outdir, `meta.${process.pid}.tmp`), join(outdir, "meta.json"))
written.add(join(outdir, "meta.json"))

// Chunks of earlier builds that this one no longer references.
for (const directory of [outdir, join(outdir, "chunks")]) {
  if (!existsSync(directory)) continue
  for (const name of readdirSync(directory)) {
    const path = join(directory, name)
    if (name.endsWith(".mjs") && !written.has(path)) rmSync(path, { force: true })
  }
}

const bytes = result.outputFiles.reduce((sum, file) => sum + file.contents.byteLength, 0)
console.log(
  `built ${relative(process.cwd(), outdir) || "dist"}: ${result.outputFiles.length} files, ${(bytes / 1024).toFixed(0)} KiB`
)
