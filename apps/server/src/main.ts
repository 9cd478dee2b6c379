/**
 * `pnpm start`: the server configured from the environment (`KEEL_DB`, `KEEL_HOST`, `KEEL_PORT`,
 * `KEEL_TOKEN`, …; see `ServerConfig`), on the default SQLite file when `KEEL_DB` is unset.
 * It logs one line saying where it listens and on which database (redacted). SIGTERM or SIGINT
 * stops it gracefully and exits 0. A failure (a bad variable, an unreachable database, a port in
 * use) is one line on stderr naming what is wrong (never a secret), and exits 1. With
 * `OTEL_EXPORTER_OTLP_ENDPOINT` set, its spans are exported over OTLP (`Telemetry.layer`).
 */
import { NodeRuntime } from "@effect/platform-node"
import { Telemetry } from "@keel/sql"
import { Effect, Layer } from "effect"
import * as Server from "./Server.js"

NodeRuntime.runMain(
  Layer.launch(Server.layerConfig()).pipe(
    // Outermost, so the spans of the server's last steps are exported when it stops.
    Effect.provide(Telemetry.layer),
    Effect.tapErrorCause(Server.reportFailure)
  ),
  { disableErrorReporting: true }
)
