#!/usr/bin/env node
// The `keel` binary: loads the bundle built by `pnpm --filter @keel/cli build`.
import { existsSync } from "node:fs"

const bundle = new URL("../dist/keel.mjs", import.meta.url)
if (!existsSync(bundle)) {
  process.stderr.write("keel: not built; run `pnpm --filter @keel/cli build` first\n")
  process.exit(1)
}
await import(bundle.href)
