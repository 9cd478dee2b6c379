/**
 * Tracing on every backend and the memory store: with `tracing: true` every operation is a span
 * (`keel.queue.<operation>`), a sent message carries the trace context it was sent in (stored with
 * it, read back by whichever process leases it), and its handler runs in a `keel.queue.handle`
 * span that is a child of the send's span; with tracing off no Keel span is made and no context is
 * stored. (Across processes, through HTTP and the CLI, with a real OTLP receiver:
 * `apps/server/test/Tracing.e2e.test.ts`.)
 */
import { expect, layer } from "@effect/vitest"
import { Queue, QueueStore } from "@keel/queue"
import { Deferred, Effect, Layer, type Scope, Tracer } from "effect"
import { layer as queueLayer, type Store, stores, uniqueName } from "./support/QueueTest.js"

/** Every span started through the tracer, kept in order. */
const captured: Array<Tracer.Span> = []

const capturing = Layer.unwrapEffect(
  Effect.map(Effect.tracer, (native) =>
    Layer.setTracer(
      Tracer.make({
        span: (...args: Parameters<Tracer.Tracer["span"]>) => {
          const span = native.span(...args)
          captured.push(span)
          return span
        },
        context: native.context
      })
    )
  )
)

const serviceOn = (store: Store, tracing: boolean): Layer.Layer<Queue.Queues> =>
  store === "memory"
    ? Queue.layerStore({ tracing }).pipe(Layer.provide(QueueStore.layerMemory), Layer.orDie)
    : Layer.orDie(queueLayer(store, { tracing }))

/** Sends one message inside a span `test.request`, consumes it; the span ids and the leased trace. */
const roundTrip = (
  queues: Queue.Service,
  name: string
): Effect.Effect<
  {
    readonly request: Tracer.Span
    readonly handle: Tracer.Span | undefined
    readonly trace: string | null | undefined
  },
  unknown,
  Scope.Scope
> =>
  Effect.gen(function* () {
    yield* queues.createQueue(name)
    const request = yield* Effect.withSpan(
      Effect.zipLeft(Effect.currentSpan, queues.send(name, { hello: "trace" })),
      "test.request"
    )
    const handled = yield* Deferred.make<{
      readonly span: Tracer.Span | undefined
      readonly trace: string | null | undefined
    }>()
    yield* queues.consume(name, (message) =>
      Effect.flatMap(Effect.option(Effect.currentSpan), (span) =>
        Deferred.succeed(handled, {
          span: span._tag === "Some" ? span.value : undefined,
          trace: message.trace
        })
      )
    )
    const { span, trace } = yield* Deferred.await(handled)
    return { request, handle: span, trace }
  })

for (const store of stores) {
  layer(Layer.merge(serviceOn(store, true), capturing), { timeout: 60_000, excludeTestServices: true })(
    `tracing on [${store}]`,
    (it) => {
      it.scoped("a handler's span is a child of the span its message was sent in; operations are spans", () =>
        Effect.gen(function* () {
          const queues = yield* Queue.Queues
          captured.length = 0
          const { request, handle, trace } = yield* roundTrip(queues, uniqueName("traced"))
          const send = captured.find((span) => span.name === "keel.queue.send")
          expect(send?.parent._tag === "Some" && send.parent.value.spanId).toBe(request.spanId)
          expect(trace).toBe(`00-${request.traceId}-${send?.spanId}-01`)
          expect(handle?.name).toBe("keel.queue.handle")
          expect(handle?.traceId).toBe(request.traceId)
          expect(handle?.parent._tag === "Some" && handle.parent.value.spanId).toBe(send?.spanId)
          expect(handle?.attributes.get("messaging.system")).toBe("keel")
          const names = new Set(captured.map((span) => span.name))
          for (const name of ["keel.queue.createQueue", "keel.queue.send", "keel.queue.handle"]) {
            expect(names.has(name)).toBe(true)
          }
        })
      )
    }
  )

  layer(Layer.merge(serviceOn(store, false), capturing), { timeout: 60_000, excludeTestServices: true })(
    `tracing off [${store}]`,
    (it) => {
      it.scoped("no Keel span is made and no trace context is stored", () =>
        Effect.gen(function* () {
          const queues = yield* Queue.Queues
          captured.length = 0
          const { handle, trace } = yield* roundTrip(queues, uniqueName("untraced"))
          expect(captured.filter((span) => span.name.startsWith("keel.")).map((span) => span.name)).toEqual(
            []
          )
          expect(trace ?? null).toBeNull()
          // The handler runs in whatever span its caller has (here: none of Keel's).
          expect(handle?.name.startsWith("keel.") ?? false).toBe(false)
        })
      )
    }
  )
}
