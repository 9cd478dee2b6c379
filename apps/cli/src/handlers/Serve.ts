/**
 * The program of `keel serve` (loaded on demand): `@keel/server`'s layer over the DSN in force,
 * run until a signal. `--host`, `--port` and `--log-level` take precedence over `KEEL_HOST`,
 * `KEEL_PORT` and `KEEL_LOG_LEVEL`; the rest of the configuration comes from the environment. A
 * signal stops it gracefully (requests in flight finish, cursors are flushed, the database
 * closed) and keel exits 0.
 */
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as HashSet from "effect/HashSet"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import type { ServeInput } from "../commands/Serve.js"
import * as Layers from "../Layers.js"
import { Shutdown } from "../Shutdown.js"
import * as Tracing from "../Tracing.js"

/**
 * The flags as configuration entries, over the configuration in force (the environment, with
 * `--log-level` as `KEEL_LOG_LEVEL` when it was given; see `Log.withLevelFlag`).
 */
const configProvider = (
  input: ServeInput,
  current: ConfigProvider.ConfigProvider
): ConfigProvider.ConfigProvider => {
  const flags = new Map<string, string>()
  if (Option.isSome(input.host)) flags.set("KEEL_HOST", input.host.value)
  if (Option.isSome(input.port)) flags.set("KEEL_PORT", String(input.port.value))
  return ConfigProvider.orElse(ConfigProvider.fromMap(flags), () => current)
}

/** `keel serve`. */
export const serve = (input: ServeInput) =>
  Effect.gen(function* () {
    const Server = yield* Effect.promise(() => import("@keel/server/Server"))
    const dsn = yield* Layers.dsn
    const current = yield* Effect.configProviderWith(Effect.succeed)
    yield* Layer.launch(Server.layer(dsn)).pipe(
      Effect.withConfigProvider(configProvider(input, current)),
      // The server installs its own logger (KEEL_LOG_LEVEL, KEEL_LOG_FORMAT); keel's would repeat each line.
      Effect.locally(FiberRef.currentLoggers, HashSet.empty()),
      // Each request starts its own trace (or continues its `traceparent` header), not TRACEPARENT's.
      Tracing.detached,
      Effect.onExit((exit) =>
        // A signal is how the server is stopped; reaching here, its layers have been released.
        Exit.isInterrupted(exit) ? Effect.flatMap(Shutdown, (clean) => Ref.set(clean, true)) : Effect.void
      )
    )
  })
