/**
 * `pnpm start`: the server configured from the environment (`KEEL_DB`, `KEEL_HOST`, `KEEL_PORT`,
 * `KEEL_TOKEN`, …; see `ServerConfig`), on the default SQLite file when `KEEL_DB` is unset.
 * It logs one line saying where it listens and on which database (redacted). SIGTERM or SIGINT
 * stops it gracefully and exits 0. A failure (a bad variable, an unreachable database, a port in
 * use) is one line on stderr naming what is wrong (never a secret), and exits 1. With
 * `OTEL_EXPORTER_OTLP_ENDPOINT` set, its spans are exported over OTLP (`Telemetry.layer`).
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Telemetry from "@keel/sql/Telemetry"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Server from "./Server.js"

NodeRuntime.runMain(
  Layer.launch(Server.layerConfig()).pipe(
    // Outermost, so the spans of the server's last steps are exported when it stops.
    Effect.provide(Telemetry.layer),
    Effect.tapErrorCause(Server.reportFailure)
  ),
  { disableErrorReporting: true }
)
