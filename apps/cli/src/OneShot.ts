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
