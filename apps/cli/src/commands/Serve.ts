/**
 * `keel serve`: the HTTP server (`@keel/server`) on the CLI's database. The server and its HTTP
 * stack are imported only when this command runs, so no other command pays for loading them.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Globals from "../Globals.js"
import * as Leaf from "../Leaf.js"

const config = {
  globals: Globals.options,
  host: Options.text("host").pipe(
    Options.withDescription("Address to listen on (default: $KEEL_HOST, else 127.0.0.1)."),
    Options.optional
  ),
  port: Options.integer("port").pipe(
    Options.withDescription("Port to listen on; 0 picks a free one (default: $KEEL_PORT, else 7373)."),
    Options.optional
  )
}
/** `keel serve`'s parsed input. */
export type ServeInput = Command.Command.ParseConfig<typeof config>

/** `keel serve`. */
export const serve = Command.make("serve", config, (input) =>
  Leaf.lazy(
    input.globals,
    () => import("../handlers/Serve.js"),
    (run) => run.serve(input)
  )
).pipe(
  Command.withDescription(
    "Start the HTTP API (OpenAPI at /openapi.json, docs at /docs) on the same database; SIGINT/SIGTERM stop it gracefully. " +
      "Logs go to stdout, one line per event (KEEL_LOG_FORMAT: logfmt or json; level: --log-level, else KEEL_LOG_LEVEL, else info). " +
      "Other settings from the environment: KEEL_TOKEN, KEEL_MAX_BODY_BYTES, KEEL_SHUTDOWN_GRACE, " +
      "KEEL_HEADERS_TIMEOUT, KEEL_REQUEST_TIMEOUT, KEEL_SCHEDULER."
  )
)
