/**
 * The values of the options every `keel` command accepts — `--db`, `--json`, `--quiet`,
 * `--verbose` — and the services that carry them. Their `@effect/cli` definitions live in
 * `Globals.ts`; this module loads nothing of `@effect/cli`, so the fast path (`Fast.ts`) can use it.
 */

import type { Redacted } from "effect"
import * as Context from "effect/Context"
import * as Option from "effect/Option"

/** The parsed global options. */
export interface GlobalOptions {
  /** `--db`: the DSN given on the command line (a secret: it may hold a password). */
  readonly db: Option.Option<Redacted.Redacted<string>>
  /** `--json`: print one JSON document on stdout (and errors as one JSON line on stderr). */
  readonly json: boolean
  /** `--quiet`: print only what the command exists to produce (a port, a position, a message). */
  readonly quiet: boolean
  /** `--verbose`: on failure, print the error's full detail after the one-line summary. */
  readonly verbose: boolean
}

/** The global options given before the subcommand (provided by the root command). */
export class RootGlobals extends Context.Tag("@keel/cli/RootGlobals")<RootGlobals, GlobalOptions>() {}

/** The global options in force for the running command: the leaf's flags over the root's. */
export class Globals extends Context.Tag("@keel/cli/Globals")<Globals, GlobalOptions>() {}

/** `inner` (a leaf's flags) over `outer` (the root's): a flag given at either place is on. */
export const merge = (outer: GlobalOptions, inner: GlobalOptions): GlobalOptions => ({
  db: Option.orElse(inner.db, () => outer.db),
  json: outer.json || inner.json,
  quiet: outer.quiet || inner.quiet,
  verbose: outer.verbose || inner.verbose
})

/** No flag given. */
export const none: GlobalOptions = { db: Option.none(), json: false, quiet: false, verbose: false }
