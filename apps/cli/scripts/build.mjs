/**
 * Bundles the CLI with esbuild into dist/ for Node 20: the binary's entry point, dist/keel.cjs
 * (src/main.ts, CommonJS), and the full command line, dist/keel.mjs (src/Full.ts). By default
 * each command's handlers (and the HTTP server of `keel serve`, 2.7 MB with its Swagger UI) go to
 * chunks in dist/chunks/ that load only when that command runs: a cold `keel port reserve` then
 * costs about 0.5 s of CPU instead of 0.8 s for the whole program in one file. `--single-file`
 * builds that one file instead. Native and file-locating packages stay external and resolve at
 * run time from apps/cli/node_modules (they are the only dependencies of @keel/cli for that reason:
 * everything else is bundled, so the packed CLI runs with no build step after `npm install`); the
 * `pg` driver is plain JavaScript and is bundled (its optional native binding stays external).
 *
 * Beside it: dist/fast.cjs, the fast path of `keel port reserve` (see src/FastPath.ts), and
 * dist/help.json, every command's help page (see src/HelpPage.ts), so that neither loads the
 * command tree.
 *
 * Safe to run concurrently (test files build in parallel): every file is written to a temporary
 * name and renamed into place, and identical sources produce identical files.
 */
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join, relative } from "node:path"
import { fileURLToPath } from "node:url"
import * as esbuild from "esbuild"

const singleFile = process.argv.includes("--single-file")
const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const outdir = join(root, "dist")

/** Packages that load native code or locate files next to themselves: never bundled. */
export const external = [
  "better-sqlite3",
  "libsql",
  "@libsql/*",
  "@electric-sql/pglite",
  "@tursodatabase/*",
  "pg-native"
]

/** What both bundles share: Node 20, the externals, minified unless KEEL_BUILD_MINIFY=0, in memory. */
const common = {
  absWorkingDir: root,
  bundle: true,
  platform: "node",
  target: "node20",
  external,
  minify: process.env.KEEL_BUILD_MINIFY !== "0",
  keepNames: false,
  legalComments: "none",
  logLevel: "warning",
  write: false,
  metafile: true
}

/** The full command line (`src/Full.ts`): an ES module whose commands load as chunks. */
const result = await esbuild.build({
  ...common,
  entryPoints: { keel: "src/Full.ts" },
  outdir,
  splitting: !singleFile,
  format: "esm",
  chunkNames: "chunks/[name]-[hash]",
  entryNames: "[name]",
  outExtension: { ".js": ".mjs" },
  // Bundled CommonJS dependencies call require(): give the ES modules one.
  banner: {
    js: "import { createRequire as __keelRequire } from 'node:module'; const require = __keelRequire(import.meta.url);"
  }
})

/**
 * The binary's entry point (`src/main.ts`) as CommonJS, `dist/keel.cjs`: an ES module entry would
 * start Node's ES module loader at every invocation (~5 ms). It imports `dist/keel.mjs` by URL
 * when it runs the full command line.
 */
const entry = await esbuild.build({
  ...common,
  entryPoints: ["src/main.ts"],
  outfile: join(outdir, "keel.cjs"),
  format: "cjs",
  define: { "import.meta.url": "__keelEntryUrl" },
  banner: { js: 'const __keelEntryUrl = require("node:url").pathToFileURL(__filename).href;' }
})

/**
 * Modules whose import does nothing but define things: unused, the fast path's bundle leaves them
 * out (the queue and cursor services, which `Layers.ts` re-exports from `src/layers/`).
 */
const definitionsOnly = {
  name: "definitions-only",
  setup(build) {
    build.onResolve({ filter: /^@keel\/|\/layers\// }, async (args) => {
      if (args.pluginData === "definitions-only") return undefined
      const resolved = await build.resolve(args.path, {
        kind: args.kind,
        importer: args.importer,
        resolveDir: args.resolveDir,
        pluginData: "definitions-only"
      })
      return resolved.errors.length > 0 ? undefined : { ...resolved, sideEffects: false }
    })
  }
}

/**
 * Modules the fast path can never reach, left out of its bundle: `FastPath.recognise` accepts only
 * SQLite without tracing, so the other backends (which `Database.ts` loads with `import()`) and the
 * OTLP exporter (which `Telemetry.layer` loads with `import()` only when an endpoint is set) are
 * replaced, where they are imported that way, by a module that throws: a recognised command line
 * that reached one would fail loudly instead of running without it.
 */
const unreachableInFastPath = {
  name: "unreachable-in-fast-path",
  setup(build) {
    build.onResolve(
      {
        filter:
          /^\.\/(internal\/(postgres|libsql)|PgliteClient|TursoClient)\.js$|^@effect\/opentelemetry\/|^@effect\/platform\/FetchHttpClient$/
      },
      (args) =>
        args.kind === "dynamic-import"
          ? { path: args.path, namespace: "unreachable-in-fast-path" }
          : undefined
    )
    build.onLoad({ filter: /.*/, namespace: "unreachable-in-fast-path" }, (args) => ({
      contents: `throw new Error(${JSON.stringify(`keel: ${args.path} is not in the fast path's bundle (FastPath.recognise)`)})`,
      loader: "js"
    }))
  }
}

/**
 * better-sqlite3 inside the fast path's bundle: its JavaScript is then compiled from V8's code
 * cache with the rest, not by `require` at every start, and its addon is loaded from the path the
 * CLI's own dependency resolves to, instead of through the `bindings` package, which searches the
 * file system from its caller's stack trace (and would search from the bundle). Together ~5 ms of
 * a cold `keel port reserve`. `bindings` is replaced by a module that loads
 * `better-sqlite3/build/Release/<name>` (where its install script puts the addon) and falls back
 * to `bindings` itself, rooted at the better-sqlite3 package, when that file is not there.
 */
const betterSqliteAddon = {
  name: "better-sqlite3-addon",
  setup(build) {
    build.onResolve({ filter: /^bindings$/ }, (args) => ({
      path: args.path,
      namespace: "better-sqlite3-addon"
    }))
    build.onLoad({ filter: /.*/, namespace: "better-sqlite3-addon" }, () => ({
      contents: [
        'const { existsSync } = require("node:fs")',
        'const { createRequire } = require("node:module")',
        'const { dirname, join } = require("node:path")',
        "module.exports = (name) => {",
        '  const root = dirname(require.resolve("better-sqlite3/package.json"))',
        '  const addon = join(root, "build", "Release", name)',
        "  if (existsSync(addon)) return require(addon)",
        '  return createRequire(join(root, "package.json"))("bindings")({ bindings: name, module_root: root })',
        "}"
      ].join("\n"),
      loader: "js"
    }))
  }
}

/**
 * `node:crypto` in the fast path's bundle loads when a property of it is first read, not when the
 * bundle is evaluated: `@effect/platform-node`'s file system imports it for temporary file names,
 * and loading it cost ~6 ms of a cold `keel port reserve` (with `KEEL_MIGRATION_CHECKSUMS` below,
 * a reserve reads none of it). Every export of the real module is there, as a getter.
 */
const lazyCrypto = {
  name: "lazy-crypto",
  setup(build) {
    build.onResolve({ filter: /^(node:)?crypto$/ }, (args) => ({ path: args.path, namespace: "lazy-crypto" }))
    build.onLoad({ filter: /.*/, namespace: "lazy-crypto" }, async () => {
      const names = Object.keys(await import("node:crypto")).filter((name) => name !== "default")
      return {
        contents: [
          "let loaded",
          'const load = () => (loaded ??= require("node:crypto"))',
          `for (const name of ${JSON.stringify(names)})`,
          "  Object.defineProperty(exports, name, { enumerable: true, get: () => load()[name] })"
        ].join("\n"),
        loader: "js"
      }
    })
  }
}

/**
 * The checksums `Migrations.checksum` gives the reservation migrations (the ones a reserve
 * verifies at every start), computed here by `Migrations.checksumTable` itself and given to the fast
 * path's bundle as `KEEL_MIGRATION_CHECKSUMS`, keyed by the exact text digested (see
 * `packages/sql/src/Migrations.ts`).
 */
const migrationChecksums = async () => {
  const bundled = await esbuild.build({
    absWorkingDir: root,
    stdin: {
      contents: [
        'import { migrations } from "../../packages/reservation/src/migrations/index.ts"',
        'import { checksumTable } from "../../packages/sql/src/Migrations.ts"',
        "module.exports = checksumTable(migrations)"
      ].join("\n"),
      resolveDir: root,
      loader: "ts"
    },
    bundle: true,
    platform: "node",
    format: "cjs",
    write: false,
    logLevel: "warning"
  })
  const module = { exports: {} }
  const require = createRequire(join(root, "package.json"))
  new Function("module", "exports", "require", bundled.outputFiles[0].text)(module, module.exports, require)
  if (!Array.isArray(module.exports) || module.exports.length === 0)
    throw new Error("build: no reservation migrations found for KEEL_MIGRATION_CHECKSUMS")
  return module.exports
}

/**
 * The fast path (`src/FastMain.ts`, see `src/FastPath.ts`): one CommonJS file, which `CodeCache.ts`
 * loads with V8's code cache (ES modules have none on Node 20).
 */
const fast = await esbuild.build({
  ...common,
  entryPoints: ["src/FastMain.ts"],
  outfile: join(outdir, "fast.cjs"),
  external: [...external.filter((name) => name !== "better-sqlite3"), "better-sqlite3/package.json"],
  plugins: [unreachableInFastPath, betterSqliteAddon, lazyCrypto, definitionsOnly],
  define: { KEEL_MIGRATION_CHECKSUMS: JSON.stringify(await migrationChecksums()) },
  format: "cjs",
  // `CodeCache.run` evaluates the bundle with `vm.Script`, which has no `import()`: an import of
  // a module left outside the bundle (a Node built-in) becomes a `require`.
  supported: { "dynamic-import": false }
})

const written = new Set()
const outputs = [...result.outputFiles, ...entry.outputFiles, ...fast.outputFiles]
for (const file of outputs) {
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
    if (/\.(mjs|cjs)$/.test(name) && !written.has(path)) rmSync(path, { force: true })
    // Code caches of an earlier fast.cjs: V8 would reject them.
    if (name.startsWith("fast.cjs.") && name.endsWith(".cache")) rmSync(path, { force: true })
  }
}

/**
 * Every command's help page (`src/HelpPages.ts`), stored as dist/help.json for `--help` without
 * `@effect/cli` (`src/HelpPage.ts`): generated by running the command line itself in-process, so
 * the pages are what it prints.
 */
const generator = join(outdir, `.help-pages-${process.pid}.mjs`)
try {
  await esbuild.build({
    absWorkingDir: root,
    stdin: {
      contents: [
        'import { Effect } from "effect"',
        'import * as HelpPages from "./HelpPages.js"',
        'import * as Program from "./Program.js"',
        "const pages = await Effect.runPromise(Effect.provide(HelpPages.pages, Program.layer))",
        "process.stdout.write(JSON.stringify(pages))"
      ].join("\n"),
      resolveDir: join(root, "src"),
      loader: "ts"
    },
    outfile: generator,
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    external,
    banner: {
      js: "import { createRequire as __keelRequire } from 'node:module'; const require = __keelRequire(import.meta.url);"
    },
    logLevel: "warning"
  })
  const generated = spawnSync(process.execPath, [generator], {
    encoding: "utf8",
    env: {},
    maxBuffer: 64 << 20
  })
  if (generated.status !== 0) throw new Error(`generating the help pages failed: ${generated.stderr}`)
  JSON.parse(generated.stdout)
  const temporary = join(outdir, `help.json.${process.pid}.tmp`)
  writeFileSync(temporary, generated.stdout)
  renameSync(temporary, join(outdir, "help.json"))
} finally {
  rmSync(generator, { force: true })
}

const bytes = outputs.reduce((sum, file) => sum + file.contents.byteLength, 0)
console.log(
  `built ${relative(process.cwd(), outdir) || "dist"}: ${outputs.length} files, ${(bytes / 1024).toFixed(0)} KiB`
)
