/**
 * Tracing for every Keel service and process.
 *
 * - `layer`: Effect's tracer exported over OTLP/HTTP (`@effect/opentelemetry`) when the standard
 *   variables say where — `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, or `OTEL_EXPORTER_OTLP_ENDPOINT`
 *   plus `/v1/traces`; `OTEL_SERVICE_NAME` (default `keel`); `OTEL_EXPORTER_OTLP_PROTOCOL`
 *   `http/json` or `http/protobuf` (the default, as the specification says). With no endpoint
 *   it is empty.
 * - `enabled`: whether an endpoint is set. Keel's services wrap their operations in spans only
 *   then (`traced`), so that a process without tracing pays nothing for it.
 * - `traceparent` / `parentOf`: the W3C trace context of the current span as text, and back — how
 *   a trace travels inside a message (producer span → consumer span) and into a command's
 *   environment (`TRACEPARENT`).
 */
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"

/** The OTLP/HTTP traces endpoint the environment names, if any. */
export const endpoint: Effect.Effect<Option.Option<string>> = Effect.gen(function* () {
  const traces = yield* Config.option(Config.nonEmptyString("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
  if (Option.isSome(traces)) return traces
  const base = yield* Config.option(Config.nonEmptyString("OTEL_EXPORTER_OTLP_ENDPOINT"))
  return Option.map(base, (url) => `${url.replace(/\/+$/, "")}/v1/traces`)
}).pipe(Effect.orElseSucceed(() => Option.none<string>()))

/** True when spans are exported (an OTLP endpoint is configured). */
export const enabled: Effect.Effect<boolean> = Effect.map(endpoint, Option.isSome)

/**
 * Effect's tracer exported over OTLP/HTTP when an endpoint is configured (spans are batched and
 * flushed when the layer's scope closes); nothing otherwise.
 */
export const layer: Layer.Layer<never> = Layer.unwrapEffect(
  Effect.gen(function* () {
    const url = yield* endpoint
    if (Option.isNone(url)) return Layer.empty
    const serviceName = yield* Config.string("OTEL_SERVICE_NAME").pipe(Config.withDefault("keel"))
    const protocol = yield* Config.string("OTEL_EXPORTER_OTLP_PROTOCOL").pipe(
      Config.withDefault("http/protobuf")
    )
    // Loaded only when spans are exported: a process without tracing never loads the exporter.
    const [OtlpTracer, OtlpSerialization, FetchHttpClient] = yield* Effect.promise(() =>
      Promise.all([
        import("@effect/opentelemetry/OtlpTracer"),
        import("@effect/opentelemetry/OtlpSerialization"),
        import("@effect/platform/FetchHttpClient")
      ])
    )
    return OtlpTracer.layer({ url: url.value, resource: { serviceName }, exportInterval: "1 second" }).pipe(
      Layer.provide(protocol === "http/json" ? OtlpSerialization.layerJson : OtlpSerialization.layerProtobuf),
      Layer.provide(FetchHttpClient.layer)
    )
  }).pipe(Effect.orElseSucceed(() => Layer.empty))
)

const traceparentPattern = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/

/** The W3C `traceparent` of the current span; undefined outside any span. */
export const traceparent: Effect.Effect<string | undefined> = Effect.map(
  Effect.currentSpan,
  (span): string | undefined => `00-${span.traceId}-${span.spanId}-${span.sampled ? "01" : "00"}`
).pipe(Effect.orElseSucceed(() => undefined))

/** The span a `traceparent` names, as a parent for spans of this process; undefined when malformed. */
export const parentOf = (text: string | null | undefined): Tracer.ExternalSpan | undefined => {
  const match = text === null || text === undefined ? null : traceparentPattern.exec(text.trim())
  if (match === null) return undefined
  const [, traceId = "", spanId = "", flags = "00"] = match
  return Tracer.externalSpan({ traceId, spanId, sampled: (Number.parseInt(flags, 16) & 1) === 1 })
}

const isStream = (value: unknown): value is Stream.Stream<unknown, unknown, unknown> =>
  typeof value === "object" && value !== null && Stream.StreamTypeId in value

/**
 * `service` with every operation in a span named `<prefix>.<operation>`: functions that return an
 * effect or a stream, and effects. Other members are kept as they are.
 */
export const traced = <S extends object>(prefix: string, service: S): S => {
  const spans: Record<string, unknown> = {}
  for (const [key, member] of Object.entries(service)) {
    const name = `${prefix}.${key}`
    if (Effect.isEffect(member)) spans[key] = Effect.withSpan(member, name)
    else if (typeof member === "function") {
      spans[key] = (...args: Array<unknown>) => {
        const result: unknown = Reflect.apply(member, service, args)
        if (Effect.isEffect(result)) return Effect.withSpan(result, name)
        if (isStream(result)) return Stream.withSpan(result, name)
        return result
      }
    }
  }
  return Object.assign({ ...service }, spans)
}

/**
 * The service `make` builds, `traced` under `prefix` when tracing is enabled (`enabled`), and
 * untouched otherwise: how a service opts in at the one place it is built.
 */
export const tracedWhenEnabled = <S extends object, E, R>(
  prefix: string,
  make: Effect.Effect<S, E, R>
): Effect.Effect<S, E, R> =>
  Effect.zipWith(make, enabled, (service, on) => (on ? traced(prefix, service) : service))
