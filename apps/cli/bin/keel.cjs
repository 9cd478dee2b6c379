#!/usr/bin/env node
// The `keel` binary: loads the entry point built by `pnpm --filter @keel/cli build`. CommonJS, as
// is the entry point: an ES module here would start Node's ES module loader at every invocation.
"use strict"
const { existsSync } = require("node:fs")
const { join } = require("node:path")

const entry = join(__dirname, "..", "dist", "keel.cjs")
if (!existsSync(entry)) {
  process.stderr.write("keel: not built; run `pnpm --filter @keel/cli build` first\n")
  process.exit(1)
}
require(entry)
