/**
 * The options every `keel` command accepts — `--db`, `--json`, `--quiet`, `--verbose` — before
 * the subcommand (`keel --json port list`) or after it (`keel port list --json`). The root
 * command's values are the defaults; a leaf's own flags win. Commands read the merged values
 * from the `Globals` service (defined in `GlobalOptions.ts`, re-exported here).
 */
import * as Options from "@effect/cli/Options"

export { type GlobalOptions, Globals, merge, none, RootGlobals } from "./GlobalOptions.js"

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
