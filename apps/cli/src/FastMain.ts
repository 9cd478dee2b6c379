/**
 * The entry point of the fast path's bundle (`dist/fast.cjs`): runs `Fast.run` as the process.
 * `main.ts` loads it only for a command line `FastPath.reserve` recognised, under `OneShot.loading`,
 * which this undoes before the command runs.
 */
import * as Fast from "./Fast.js"
import * as OneShot from "./OneShot.js"
import * as Process from "./Process.js"

// Every module of the bundle is evaluated by now (`main.ts` called `OneShot.loading`).
OneShot.loaded()
Process.runMain(Fast.run(process.argv))
