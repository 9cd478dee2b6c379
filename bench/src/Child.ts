/**
 * Benchmark child processes: each measured system runs in a process of its own, so its peak RSS
 * is its own and one system's JIT state, timers or sockets never touch another's.
 *
 * A TypeScript entry point is bundled once per coordinating process with esbuild into `.bundle/`
 * beside it: only the workspace's own TypeScript (`@keel/*`, which is consumed as source, and the
 * bench's modules) goes into the bundle. Every package from `node_modules` — Effect as much as
 * pg-boss or BullMQ — stays external and is loaded by Node from its own files, as an application
 * loads it, by the absolute path esbuild resolves (pnpm's strict layout would hide it from the
 * bundle's directory). A child boots with plain node in about a second instead of two through tsx.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdirSync, rmSync } from "node:fs"
import { basename, dirname, join } from "node:path"
import type { Plugin } from "esbuild"

/** Bare specifiers (esbuild filters are Go regular expressions: no look-ahead). */
const bareSpecifier = /^[^./]/

const externalByAbsolutePath: Plugin = {
  name: "bench-externals",
  setup: (build) => {
    build.onResolve({ filter: bareSpecifier }, async (args) => {
      if (args.pluginData === "bench-externals") return undefined
      // Builtins stay as they are; the workspace's TypeScript packages are bundled.
      if (args.path.startsWith("node:") || args.path.startsWith("@keel/")) return undefined
      const resolved = await build.resolve(args.path, {
        kind: args.kind,
        resolveDir: args.resolveDir,
        pluginData: "bench-externals"
      })
      // An optional peer that is not installed: keep the bare name; it fails only if loaded.
      return { path: resolved.errors.length > 0 ? args.path : resolved.path, external: true }
    })
  }
}

const bundles = new Map<string, Promise<string>>()

/** The runnable bundle of the TypeScript entry point `script` (built once per process). */
export const runnable = (script: string): Promise<string> => {
  const cached = bundles.get(script)
  if (cached !== undefined) return cached
  const dir = join(dirname(script), ".bundle")
  const outfile = join(dir, `${basename(script).replace(/\.ts$/, "")}.${process.pid}.mjs`)
  const built = (async () => {
    mkdirSync(dir, { recursive: true })
    const esbuild = await import("esbuild")
    await esbuild.build({
      entryPoints: [script],
      outfile,
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      plugins: [externalByAbsolutePath],
      logLevel: "error",
      banner: {
        js: "import { createRequire as __benchRequire } from 'node:module'; const require = __benchRequire(import.meta.url);"
      }
    })
    process.once("exit", () => rmSync(outfile, { force: true }))
    return outfile
  })()
  bundles.set(script, built)
  return built
}

/** A started child: its process, and its stdout once it has exited with code 0. */
export interface Started {
  readonly child: ChildProcess
  /** Resolves with everything the child printed on stdout; rejects when it exits non-zero. */
  readonly done: Promise<string>
  /** Resolves when the child has printed `line` alone on a line. */
  readonly printed: (line: string) => Promise<void>
}

/** Starts the bundle of `script` with plain node; stderr is passed through. */
export const start = async (script: string, args: ReadonlyArray<string>): Promise<Started> => {
  const file = await runnable(script)
  // BENCH_CPU_PROF=DIR writes a V8 CPU profile of every child into DIR (`node --cpu-prof`).
  const profile = process.env.BENCH_CPU_PROF
  const flags = profile === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${profile}`]
  const child = spawn(process.execPath, [...flags, file, ...args], { stdio: ["pipe", "pipe", "inherit"] })
  let output = ""
  const waiting: Array<{ readonly line: string; readonly resolve: () => void }> = []
  child.stdout?.setEncoding("utf8")
  child.stdout?.on("data", (chunk: string) => {
    output += chunk
    for (const wait of [...waiting]) {
      if (output.split("\n").includes(wait.line)) {
        waiting.splice(waiting.indexOf(wait), 1)
        wait.resolve()
      }
    }
  })
  const done = new Promise<string>((resolve, reject) => {
    child.on("error", reject)
    child.on("close", (code, signal) => {
      if (code === 0) resolve(output)
      else reject(new Error(`${basename(script)} ${args.join(" ")} exited with ${code ?? signal}`))
    })
  })
  const printed = (line: string) =>
    output.split("\n").includes(line)
      ? Promise.resolve()
      : new Promise<void>((resolve) => waiting.push({ line, resolve }))
  return { child, done, printed }
}

/** Runs `script` to completion and parses the last line of its stdout that is a JSON value. */
export const runJson = async (script: string, args: ReadonlyArray<string>): Promise<unknown> => {
  const output = await (await start(script, args)).done
  const line = output
    .split("\n")
    .filter((text) => text.startsWith("{") || text.startsWith("["))
    .pop()
  if (line === undefined) throw new Error(`${basename(script)} printed no result`)
  return JSON.parse(line)
}
