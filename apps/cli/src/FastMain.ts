/**
 * The entry point of the fast path's bundle (`dist/fast.cjs`): runs `Fast.run` as the process.
 * `main.ts` loads it only for a command line `FastPath.reserve` recognised.
 */
import * as Fast from "./Fast.js"
import * as Process from "./Process.js"

Process.runMain(Fast.run(process.argv))
