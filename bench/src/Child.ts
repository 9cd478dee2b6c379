/**
 * Benchmark child processes: each measured system runs in a process of its own, so its peak RSS
 * is its own and one system's JIT state, timers or sockets never touch another's.
 *
 * A TypeScript entry point is bundled once per coordinating process (`@keel/sql/test/Bundle`):
 * only the workspace's own TypeScript (`@keel/*`, consumed as source, and the bench's modules)
 * goes into the bundle. Every package from `node_modules` — Effect as much as pg-boss or BullMQ —
 * stays external and is loaded by Node from its own files, as an application loads it. A child
 * boots with plain node in about a second instead of two through tsx.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { basename } from "node:path"
import * as Bundle from "@keel/sql/test/Bundle"

/** The runnable bundle of the TypeScript entry point `script` (built once per process). */
const runnable = (script: string): Promise<string> => Bundle.runnable(script, { externals: "packages" })

/** A started child: its process, and its stdout once it has exited with code 0. */
export interface Started {
  readonly child: ChildProcess
  /** Resolves with everything the child printed on stdout; rejects when it exits non-zero. */
  readonly done: Promise<string>
  /** Resolves when the child has printed `line` alone on a line. */
  readonly printed: (line: string) => Promise<void>
}

/**
 * Starts the bundle of `script` with plain node (and `nodeFlags`, e.g. `--expose-gc`); stderr is
 * passed through.
 */
export const start = async (
  script: string,
  args: ReadonlyArray<string>,
  nodeFlags: ReadonlyArray<string> = []
): Promise<Started> => {
  const file = await runnable(script)
  // BENCH_CPU_PROF=DIR writes a V8 CPU profile of every child into DIR (`node --cpu-prof`).
  const profile = process.env.BENCH_CPU_PROF
  const flags = profile === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${profile}`]
  const child = spawn(process.execPath, [...flags, ...nodeFlags, file, ...args], {
    stdio: ["pipe", "pipe", "inherit"]
  })
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
export const runJson = async (
  script: string,
  args: ReadonlyArray<string>,
  nodeFlags: ReadonlyArray<string> = []
): Promise<unknown> => {
  const output = await (await start(script, args, nodeFlags)).done
  const line = output
    .split("\n")
    .filter((text) => text.startsWith("{") || text.startsWith("["))
    .pop()
  if (line === undefined) throw new Error(`${basename(script)} printed no result`)
  return JSON.parse(line)
}
