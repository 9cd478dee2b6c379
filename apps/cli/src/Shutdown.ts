/**
 * How a long-running command (`queue consume`, `serve`) tells the process that a SIGINT/SIGTERM
 * ended it cleanly — work finished or handed back, resources released — so `keel` exits 0
 * instead of 130 (interrupted). One-shot commands never set it.
 */

import type { Ref } from "effect"
import * as Context from "effect/Context"

/** Set to true by a command that shut down cleanly after a signal. */
export class Shutdown extends Context.Tag("@keel/cli/Shutdown")<Shutdown, Ref.Ref<boolean>>() {}
