/**
 * The full command line (`dist/keel.mjs`, an ES module whose commands load as chunks): `@effect/cli`
 * parses `process.argv` and runs the command. `main.ts` imports it for every invocation it does not
 * answer itself (stored help, the usage error of `port reserve`, the fast path).
 */
import * as Process from "./Process.js"
import * as Program from "./Program.js"

Process.runMain(Program.run(process.argv))
