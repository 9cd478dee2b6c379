/**
 * TypeScript entry points for child processes, bundled with esbuild into `.bundle/` beside the
 * script (so the bundle resolves the same `node_modules`) and run with plain node: a child boots
 * in a fraction of the time tsx needs. Used by the tests' child processes (`Processes.ts`) and the
 * benchmarks' per-system processes.
 *
 * A bundle is a directory: the entry file and, for every dynamic `import()`, a chunk that loads
 * only when that import runs (code splitting). Without it esbuild inlines the imported module and
 * hoists its external imports to the top of the one file, so `@keel/sql`'s on-demand drivers (pg,
 * libSQL's native library, PGlite) would all load at start-up: 15 MiB of RSS in a SQLite process.
 *
 * Bundles are named by the building process's pid and removed when it exits; bundles of processes
 * that are gone (killed workers never run their exit hook) are removed by the next build.
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from "node:fs"
import { basename, dirname, join } from "node:path"
import type { Plugin } from "esbuild"

/**
 * What stays out of the bundle, imported by the absolute path esbuild resolves (pnpm's strict
 * layout hides packages from the bundle's own directory):
 * - `native`: only packages that load native code or files next to themselves; everything else
 *   is bundled (fastest start; what tests want).
 * - `packages`: every package from `node_modules`; only the workspace's `@keel/*` TypeScript is
 *   bundled, so libraries load from their own files as an application loads them (what
 *   benchmarks want).
 */
export type Externals = "native" | "packages"

/** Options of `runnable`. */
export interface Options {
  readonly externals: Externals
}

const nativePackage =
  /^(better-sqlite3|libsql|@libsql\/linux-[^/]+|@neon-rs\/[^/]+|@electric-sql\/pglite|@tursodatabase\/[^/]+|turso-0\.4\.4|pg-native|esbuild)(\/.*)?$/

/** Bare specifiers (esbuild filters are Go regular expressions: no look-ahead). */
const bareSpecifier = /^[^./]/

const externalByAbsolutePath = (externals: Externals): Plugin => ({
  name: `keel-externals-${externals}`,
  setup: (build) => {
    const marker = `keel-externals-${externals}`
    build.onResolve({ filter: externals === "native" ? nativePackage : bareSpecifier }, async (args) => {
      if (args.pluginData === marker) return undefined
      if (externals === "packages" && (args.path.startsWith("node:") || args.path.startsWith("@keel/"))) {
        return undefined
      }
      const resolved = await build.resolve(args.path, {
        kind: args.kind,
        resolveDir: args.resolveDir,
        pluginData: marker
      })
      // Not installed (an optional peer such as pg-native): keep the bare specifier; it fails only if loaded.
      return { path: resolved.errors.length > 0 ? args.path : resolved.path, external: true }
    })
  }
})

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return error instanceof Error && "code" in error && error.code === "EPERM"
  }
}

const removeOrphanBundles = (dir: string): void => {
  // A bundle directory `<name>.<externals>.<pid>` (or a single file `….<pid>.mjs` of older builds).
  for (const entry of readdirSync(dir)) {
    const pid = /\.(\d+)(\.mjs)?$/.exec(entry)?.[1]
    if (pid !== undefined && Number(pid) !== process.pid && !isAlive(Number(pid))) {
      rmSync(join(dir, entry), { recursive: true, force: true })
    }
  }
}

const bundles = new Map<string, Promise<string>>()

/**
 * Every file of the bundle whose entry file `runnable` returned: the entry and its chunks (a CPU
 * profile's frames point into all of them).
 */
export const outputs = (entry: string): ReadonlyArray<string> => {
  const chunks = join(dirname(entry), "chunks")
  return [
    entry,
    ...(existsSync(chunks)
      ? readdirSync(chunks)
          .filter((file) => file.endsWith(".mjs"))
          .map((file) => join(chunks, file))
      : [])
  ]
}

/**
 * The runnable file for `script`: a `.ts` entry point is bundled once per process and options
 * (later calls share the build); any other file is returned as it is.
 */
export const runnable = (script: string, options: Options): Promise<string> => {
  if (!/\.(m|c)?ts$/.test(script)) return Promise.resolve(script)
  const key = `${options.externals}:${script}`
  const cached = bundles.get(key)
  if (cached !== undefined) return cached
  const dir = join(dirname(script), ".bundle")
  const name = basename(script).replace(/\.(m|c)?ts$/, "")
  const outdir = join(dir, `${name}.${options.externals}.${process.pid}`)
  const built = (async () => {
    mkdirSync(dir, { recursive: true })
    removeOrphanBundles(dir)
    // Loaded here, not at the top: children import this module's package too, and never bundle.
    const esbuild = await import("esbuild")
    await esbuild.build({
      entryPoints: { [name]: script },
      outdir,
      outExtension: { ".js": ".mjs" },
      chunkNames: "chunks/[name]-[hash]",
      bundle: true,
      splitting: true,
      platform: "node",
      format: "esm",
      target: "node20",
      plugins: [externalByAbsolutePath(options.externals)],
      logLevel: "error",
      // Bundled CommonJS dependencies call require(): give every output file one.
      banner: {
        js: "import { createRequire as __keelRequire } from 'node:module'; const require = __keelRequire(import.meta.url);"
      }
    })
    process.once("exit", () => rmSync(outdir, { recursive: true, force: true }))
    return join(outdir, `${name}.mjs`)
  })()
  bundles.set(key, built)
  return built
}
