/**
 * Tracing for one `keel` invocation. With an OTLP endpoint in the environment
 * (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), the command runs with
 * `@keel/sql`'s `Telemetry.layer` (its spans exported, and flushed when the command ends, on a
 * signal too) and under the span `TRACEPARENT` names, when set: a script's trace continues through
 * `keel queue send`. Without an endpoint nothing is loaded and nothing changes (cold start).
 */
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"

/** Whether the environment names an OTLP endpoint (what `Telemetry.enabled` checks). */
const configured: Effect.Effect<boolean> = Effect.map(
  Config.all([
    Config.option(Config.nonEmptyString("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")),
    Config.option(Config.nonEmptyString("OTEL_EXPORTER_OTLP_ENDPOINT"))
  ]),
  ([traces, base]) => Option.isSome(traces) || Option.isSome(base)
).pipe(Effect.orElseSucceed(() => false))

/** The W3C trace context a calling process hands down, if any. */
const inherited: Effect.Effect<Option.Option<string>> = Config.option(
  Config.nonEmptyString("TRACEPARENT")
).pipe(Effect.orElseSucceed(() => Option.none<string>()))

/**
 * `effect` with spans exported when tracing is configured, under `TRACEPARENT`'s span when it
 * names one; `effect` itself otherwise.
 */
export const traced = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(configured, (on) => {
    if (!on) return effect
    return Effect.gen(function* () {
      const Telemetry = yield* Effect.promise(() => import("@keel/sql/Telemetry"))
      const parent = Telemetry.parentOf(Option.getOrUndefined(yield* inherited))
      const run = parent === undefined ? effect : Effect.withParentSpan(effect, parent)
      return yield* Effect.provide(run, Telemetry.layer)
    })
  })

/**
 * `effect` outside any parent span: a long-running command (`serve`, `queue consume`) starts its
 * own traces (per request, per message) instead of putting hours of work under `TRACEPARENT`.
 */
export const detached = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.locallyWith(effect, FiberRef.currentContext, Context.omit(Tracer.ParentSpan))
