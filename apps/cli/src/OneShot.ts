/**
 * V8 settings for a process that runs one short command and exits: the fast path of
 * `keel port reserve`, which `main.ts` loads only for such a command line. Set at run time, before
 * the fast path's bundle is compiled (so V8's code cache is written and checked under them), not
 * on Node's command line, which the `keel` binary does not control.
 *
 * On a 2-core VM where a first touch of a page costs ~10 µs, a cold reserve's time follows the
 * memory it touches: with these settings its peak RSS went from 67.6 to 58.2 MiB (`node -e 0`:
 * 39.3 MiB) and its page faults from ~7,200 to ~5,800, and it ran ~3% faster
 * (`apps/cli/scripts/coldstart.mjs`). A reserve runs far too briefly for an optimising compiler
 * to pay off, and everything it loads lives to the end, so a growing young generation only adds
 * fresh pages to copy into.
 */
import { setFlagsFromString } from "node:v8"

/**
 * The flags: no optimising (TurboFan, Maglev) or baseline (Sparkplug) compiler — the
 * interpreter runs the reserve — and a young generation that keeps its first semi-space size
 * instead of doubling while the bundle's modules load.
 */
export const flags: ReadonlyArray<string> = [
  "--no-turbofan",
  "--no-maglev",
  "--no-sparkplug",
  "--semi-space-growth-factor=1"
]

/** Applies `flags` to this process's V8. Only for a process that exits after one short command. */
export const apply = (): void => setFlagsFromString(flags.join(" "))

/** Where `loading` keeps what `loaded` restores: shared by the entry point's and the bundle's copy. */
const saved = Symbol.for("@keel/cli/OneShot/loading")

interface Saved {
  readonly stackTraceLimit: number
  readonly performance: PropertyDescriptor | undefined
}

const isSaved = (value: unknown): value is Saved =>
  typeof value === "object" && value !== null && "stackTraceLimit" in value && "performance" in value

/**
 * Prepares the process for evaluating a bundle's modules, until `loaded`. Two things Effect does
 * once at load cost a cold reserve ~4.5 ms, and neither changes what it computes:
 *
 * - `effect/Utils` reads `new Error().stack` to learn whether a frame of its own can be optimised
 *   away. Formatting a frame of a function from the code-cached bundle makes V8 collect source
 *   positions (~2 ms, measured at that line). `Error.stackTraceLimit` is 0, so there is no frame to
 *   format; Effect then uses its `try`/`finally` variant of `internalCall`, the one it keeps for
 *   engines that inline, which gives the same frames and results.
 * - `effect/Clock` calls `performance.now()` once to line `process.hrtime` up with the epoch (it
 *   reads `process.hrtime` afterwards), and Node's `performance` global loads `perf_hooks`
 *   (~2.5 ms). `performance` is an object with only `timeOrigin` and `now`, from `process.uptime`;
 *   the value Effect computes does not depend on the origin (it subtracts one reading from another).
 */
export const loading = (): void => {
  const performance = Object.getOwnPropertyDescriptor(globalThis, "performance")
  const state: Saved = { stackTraceLimit: Error.stackTraceLimit, performance }
  Reflect.set(globalThis, saved, state)
  Error.stackTraceLimit = 0
  if (performance?.configurable === false) return
  const timeOrigin = Date.now() - process.uptime() * 1000
  Object.defineProperty(globalThis, "performance", {
    configurable: true,
    enumerable: performance?.enumerable ?? true,
    writable: true,
    value: { timeOrigin, now: () => process.uptime() * 1000 }
  })
}

/**
 * Undoes `loading` once the modules are evaluated, before the command runs: errors get their stack
 * frames and `performance` is Node's own again. Does nothing when `loading` was not called.
 */
export const loaded = (): void => {
  const state: unknown = Reflect.get(globalThis, saved)
  if (!isSaved(state)) return
  Reflect.deleteProperty(globalThis, saved)
  Error.stackTraceLimit = state.stackTraceLimit
  if (state.performance === undefined) Reflect.deleteProperty(globalThis, "performance")
  else if (state.performance.configurable !== false)
    Object.defineProperty(globalThis, "performance", state.performance)
}
