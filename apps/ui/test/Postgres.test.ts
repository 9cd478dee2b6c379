/** The dashboard in Chromium against `keel serve` on PostgreSQL (see `support/Suite.ts`). */
import { describe } from "vitest"
import { kinds } from "./support/Serve.js"
import { suite } from "./support/Suite.js"

if (kinds.includes("postgres")) suite("postgres", { min: 26_200, max: 26_299 })
else describe.skip("the dashboard [postgres]: not in KEEL_TEST_BACKENDS", () => undefined)
