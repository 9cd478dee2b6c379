/**
 * The options every `keel` command accepts — `--db`, `--json`, `--quiet`, `--verbose` — before
 * the subcommand (`keel --json port list`) or after it (`keel port list --json`). The root
 * command's values are the defaults; a leaf's own flags win. Commands read the merged values
 * from the `Globals` service.
 */
import * as Options from "@effect/cli/Options"
import { Context, Option, type Redacted } from "effect"

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

/** The global options as `@effect/cli` options (attached to the root and to every leaf command). */
export const options = {
  db: Options.redacted("db").pipe(
    Options.withPseudoName("DSN"),
    Options.withDescription(
      "Database DSN: sqlite:PATH, file:PATH (libSQL), libsql://HOST, postgres://…, pglite:DIR|memory. " +
        "Default: $KEEL_DB, else $XDG_DATA_HOME/keel/keel.db (~/.local/share/keel/keel.db)."
    ),
    Options.optional
  ),
  json: Options.boolean("json").pipe(Options.withDescription("Print one machine-readable JSON document.")),
  quiet: Options.boolean("quiet").pipe(
    Options.withAlias("q"),
    Options.withDescription("Print only the command's result; no confirmations or progress lines.")
  ),
  verbose: Options.boolean("verbose").pipe(
    Options.withDescription("On failure, also print the error's full detail (secrets redacted).")
  )
}

/** `inner` (a leaf's flags) over `outer` (the root's): a flag given at either place is on. */
export const merge = (outer: GlobalOptions, inner: GlobalOptions): GlobalOptions => ({
  db: Option.orElse(inner.db, () => outer.db),
  json: outer.json || inner.json,
  quiet: outer.quiet || inner.quiet,
  verbose: outer.verbose || inner.verbose
})

/** No flag given. */
export const none: GlobalOptions = { db: Option.none(), json: false, quiet: false, verbose: false }
