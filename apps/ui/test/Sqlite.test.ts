/** The dashboard in Chromium against `keel serve` on SQLite (see `support/Suite.ts`). */
import { describe } from "vitest"
import { kinds } from "./support/Serve.js"
import { suite } from "./support/Suite.js"

if (kinds.includes("sqlite")) suite("sqlite", { min: 26_100, max: 26_199 })
else describe.skip("the dashboard [sqlite]: not in KEEL_TEST_BACKENDS", () => undefined)
