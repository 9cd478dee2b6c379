/**
 * Options are Schemas (`Options.ts`): each decodes what callers pass to what the operation uses,
 * once, and every operation reports a rejected option as `InvalidOption` naming its path, the value
 * given and what was expected — before anything is written.
 */
import { describe, expect, it } from "@effect/vitest"
import { Options, Queue, QueueStore } from "@keel/queue"
import { Duration, Effect, Either, Layer, Schema } from "effect"
import { uniqueName } from "./support/QueueTest.js"

const memory = Queue.layerStore().pipe(Layer.provide(QueueStore.layerMemory), Layer.orDie)

describe("option schemas", () => {
  it("decode durations (number, Duration, text) to whole milliseconds, nested ones included", () => {
    const decode = Schema.decodeUnknownSync(Options.SendOptions)
    expect(
      decode({ delay: "2 seconds", priority: -3, backoff: { base: Duration.millis(1.5), max: 60_000 } })
    ).toEqual({ delay: 2_000, priority: -3, backoff: { base: 2, max: 60_000 } })
    // The input type is what callers write; the decoded one is what the operation uses.
    const given: Options.SendOptions = { delay: Duration.seconds(1), dedupMode: "replace" }
    const used: typeof Options.SendOptions.Type = decode(given)
    expect(used).toEqual({ delay: 1_000, dedupMode: "replace" })
  })

  it("refuse a negative duration written as text instead of clamping it to zero", () => {
    const decode = Schema.decodeUnknownEither(Options.ReleaseOptions)
    expect(Either.isLeft(decode({ delay: "-5 seconds" }))).toBe(true)
    expect(Either.isLeft(decode({ delay: -1 }))).toBe(true)
    expect(Either.isLeft(decode({ delay: Number.POSITIVE_INFINITY }))).toBe(true)
    expect(decode({ delay: 0 })).toEqual(Either.right({ delay: 0 }))
  })

  it("accept each integer bound and refuse one past it", () => {
    const decode = Schema.decodeUnknownEither(Options.ReadOptions)
    expect(Either.isRight(decode({ qty: 1 }))).toBe(true)
    expect(Either.isRight(decode({ qty: 10_000 }))).toBe(true)
    expect(Either.isLeft(decode({ qty: 0 }))).toBe(true)
    expect(Either.isLeft(decode({ qty: 10_001 }))).toBe(true)
    expect(Either.isLeft(decode({ qty: 1.5 }))).toBe(true)
    expect(Either.isLeft(decode({ qty: "3" }))).toBe(true)
  })
})

describe("operations report the rejected option", () => {
  const refused = <A, E>(effect: Effect.Effect<A, E, Queue.Queues>) =>
    Effect.flip(effect).pipe(Effect.provide(memory))

  it.effect("a send: path, value given and expected range; nothing stored", () =>
    Effect.gen(function* () {
      const queues = yield* Queue.Queues
      const name = uniqueName("options")
      yield* queues.createQueue(name)
      expect(yield* Effect.flip(queues.send(name, 1, { priority: 40_000 }))).toMatchObject({
        _tag: "InvalidOption",
        option: "priority",
        value: "40000",
        expected: "an integer from -32768 to 32767"
      })
      expect(
        yield* Effect.flip(
          queues.sendBatch(name, [
            { payload: 1 },
            { payload: 2, backoff: { base: "1 minute", max: "1 second" } }
          ])
        )
      ).toMatchObject({
        _tag: "InvalidOption",
        option: "messages[1].backoff.max",
        value: '"1 second"',
        expected: "a duration from 1m to 365d"
      })
      expect(yield* Effect.flip(queues.send(name, 1, { dedupWindow: "1 hour" }))).toMatchObject({
        option: "dedupWindow",
        expected: "no dedupWindow without a dedupKey"
      })
      expect(yield* Effect.flip(queues.sendBatch(name, [{ payload: 1, group: "" }]))).toMatchObject({
        option: "messages[0].group",
        expected: "a string of 1 to 128 characters without control characters"
      })
      expect((yield* queues.metrics(name)).depth).toBe(0)
    }).pipe(Effect.provide(memory))
  )

  it.effect("reads, releases, acknowledgements and updates", () =>
    Effect.gen(function* () {
      const queues = yield* Queue.Queues
      const name = uniqueName("options")
      yield* queues.createQueue(name)
      yield* queues.send(name, 1)
      expect(yield* Effect.flip(queues.read(name, { qty: 0 }))).toMatchObject({
        option: "qty",
        value: "0",
        expected: "an integer from 1 to 10000"
      })
      // @ts-expect-error a wire caller may send anything
      expect(yield* Effect.flip(queues.read(name, { visibilityTimeout: "forever" }))).toMatchObject({
        option: "visibilityTimeout",
        value: '"forever"',
        expected: "a duration from 1ms to 12h"
      })
      const [message] = yield* queues.read(name, { visibilityTimeout: "1 minute" })
      if (message === undefined) return yield* Effect.die("nothing leased")
      // @ts-expect-error a wire caller may send anything
      expect(yield* Effect.flip(queues.release(name, message, { error: 5 }))).toMatchObject({
        option: "error",
        expected: "a string"
      })
      expect(yield* Effect.flip(queues.archive(name, { id: message.id, lease: "" }))).toMatchObject({
        option: "lease.lease",
        expected: "the lease token returned by read"
      })
      expect(
        yield* Effect.flip(queues.archiveBatch(name, [message, { id: -1, lease: message.lease }]))
      ).toMatchObject({ option: "leases[1].id", value: "-1" })
      expect(yield* Effect.flip(queues.update(name, message.id, { delay: "-1 second" }))).toMatchObject({
        option: "delay"
      })
      // None of the refused calls changed the lease: it is still held and can be acknowledged.
      yield* queues.archive(name, message)
    }).pipe(Effect.provide(memory))
  )

  it.effect("settings, the archive, dead letters and the event log", () =>
    Effect.gen(function* () {
      const queues = yield* Queue.Queues
      const name = uniqueName("options")
      expect(
        yield* Effect.flip(queues.createQueue(name, { rateLimit: { limit: 10, interval: "0 seconds" } }))
      ).toMatchObject({ option: "rateLimit.interval", expected: "a duration from 1ms to 1d" })
      // @ts-expect-error a wire caller may send anything
      expect(yield* Effect.flip(queues.createQueue(name, { rateLimit: 5 }))).toMatchObject({
        option: "rateLimit",
        expected: "{ limit, interval } or null"
      })
      expect(yield* Effect.flip(queues.createQueue(name, { groupOnDead: "stop" }))).toMatchObject({
        option: "groupOnDead",
        value: '"stop"',
        expected: "skip or block"
      })
      expect(yield* Effect.flip(queues.getQueue(name))).toMatchObject({ _tag: "QueueNotFound" })
      yield* queues.createQueue(name, { concurrencyLimit: null, rateLimit: null })
      expect(yield* Effect.flip(queues.listArchive(name, { before: 0 }))).toMatchObject({ option: "before" })
      expect(yield* Effect.flip(queues.requeueDead(name, { ids: [1, 2.5] }))).toMatchObject({
        option: "ids[1]",
        value: "2.5"
      })
      expect(yield* Effect.flip(queues.readEvents(name, { limit: 0 }))).toMatchObject({ option: "limit" })
    }).pipe(Effect.provide(memory))
  )

  it.effect("the service's own configuration names the option inside defaults", () =>
    Effect.gen(function* () {
      const bad = (config: Queue.QueueConfig) =>
        Effect.flip(Queue.make(config).pipe(Effect.provide(QueueStore.layerMemory)))
      expect(yield* bad({ maxPayloadBytes: 0 })).toMatchObject({ option: "maxPayloadBytes" })
      expect(yield* bad({ defaults: { retention: "-1 day" } })).toMatchObject({
        option: "defaults.retention",
        value: '"-1 day"'
      })
    })
  )

  it.effect("a consumer: its backoff cap below its initial delay", () =>
    refused(
      Effect.scoped(
        Effect.gen(function* () {
          const queues = yield* Queue.Queues
          const name = uniqueName("options")
          yield* queues.createQueue(name)
          return yield* queues.consume(name, () => Effect.void, {
            backoff: { initial: "10 seconds", max: "1 second" }
          })
        })
      )
    ).pipe(
      Effect.map((error) =>
        expect(error).toMatchObject({ option: "backoff.max", expected: "a duration from 10s to 365d" })
      )
    )
  )
})
