import { describe, expect, it } from "@effect/vitest"
import { LabelledMetric } from "@keel/sql"
import { Duration, Effect, Metric, MetricBoundaries, MetricState } from "effect"

describe("LabelledMetric", () => {
  it.effect(
    "a labelled counter, gauge and timer are the very series Metric.tagged names (a timer: tagged from an unlabelled LabelledMetric.timer)",
    () =>
      Effect.gen(function* () {
        const counter = LabelledMetric.counter("keel_test_labelled_total", "a test counter", {
          a: "1",
          b: "2"
        })
        yield* Metric.incrementBy(counter, 3)
        const tagged = Metric.tagged(
          Metric.tagged(
            Metric.counter("keel_test_labelled_total", { description: "a test counter" }),
            "a",
            "1"
          ),
          "b",
          "2"
        )
        yield* Metric.increment(tagged)
        expect((yield* Metric.value(tagged)).count).toBe(4)
        expect((yield* Metric.value(counter)).count).toBe(4)
        // Another label value is another series.
        const other = LabelledMetric.counter("keel_test_labelled_total", "a test counter", { a: "1", b: "3" })
        expect((yield* Metric.value(other)).count).toBe(0)

        const gauge = LabelledMetric.gauge("keel_test_labelled_gauge", "a test gauge", { q: "x" })
        yield* Metric.set(gauge, 7)
        const taggedGauge = Metric.tagged(
          Metric.gauge("keel_test_labelled_gauge", { description: "a test gauge" }),
          "q",
          "x"
        )
        expect((yield* Metric.value(taggedGauge)).value).toBe(7)

        const timer = LabelledMetric.timer("keel_test_labelled_timer", "a test timer", { q: "x" })
        yield* Metric.update(timer, Duration.millis(12))
        const taggedTimer = Metric.tagged(
          LabelledMetric.timer("keel_test_labelled_timer", "a test timer", {}),
          "q",
          "x"
        )
        const state = yield* Metric.value(taggedTimer)
        expect(MetricState.isHistogramState(state)).toBe(true)
        expect(state.count).toBe(1)
        expect(state.sum).toBe(12)
      })
  )

  it.effect(
    "a labelled incremental counter and a labelled histogram are the series Metric.tagged names (same boundaries object)",
    () =>
      Effect.gen(function* () {
        const counter = LabelledMetric.counter(
          "keel_test_labelled_incremental_total",
          "an incremental counter",
          { m: "POST" },
          { incremental: true }
        )
        yield* Metric.incrementBy(counter, 2)
        const taggedCounter = Metric.tagged(
          Metric.counter("keel_test_labelled_incremental_total", {
            description: "an incremental counter",
            incremental: true
          }),
          "m",
          "POST"
        )
        yield* Metric.increment(taggedCounter)
        expect((yield* Metric.value(counter)).count).toBe(3)
        const boundaries = MetricBoundaries.exponential({ start: 0.001, factor: 2, count: 4 })
        const histogram = LabelledMetric.histogram(
          "keel_test_labelled_histogram",
          boundaries,
          "a histogram",
          {
            m: "POST",
            s: "201"
          }
        )
        yield* Metric.update(histogram, 0.003)
        const taggedHistogram = Metric.histogram(
          "keel_test_labelled_histogram",
          boundaries,
          "a histogram"
        ).pipe(Metric.tagged("m", "POST"), Metric.tagged("s", "201"))
        yield* Metric.update(taggedHistogram, 0.005)
        const state = yield* Metric.value(histogram)
        expect({ count: state.count, sum: state.sum }).toEqual({ count: 2, sum: 0.008 })
      })
  )

  it.effect("an update of a labelled counter costs less than one of Metric.tagged", () =>
    Effect.gen(function* () {
      const labelled = LabelledMetric.counter("keel_test_speed_total", "speed", { q: "x", r: "y" })
      const tagged = Metric.tagged(
        Metric.tagged(Metric.counter("keel_test_speed_total", { description: "speed" }), "q", "x"),
        "r",
        "y"
      )
      const time = (metric: Metric.Metric.Counter<number>) =>
        Effect.gen(function* () {
          const started = performance.now()
          for (let i = 0; i < 20_000; i++) yield* Metric.increment(metric)
          return performance.now() - started
        })
      // The best of three alternating rounds each: a GC pause or a busy machine in one round does
      // not decide it (a labelled update is several times cheaper, so the best rounds differ clearly).
      let fast = Number.POSITIVE_INFINITY
      let slow = Number.POSITIVE_INFINITY
      for (let round = 0; round < 4; round++) {
        const labelledRound = yield* time(labelled)
        const taggedRound = yield* time(tagged)
        if (round === 0) continue // warm-up
        fast = Math.min(fast, labelledRound)
        slow = Math.min(slow, taggedRound)
      }
      expect(fast).toBeLessThan(slow)
      expect((yield* Metric.value(labelled)).count).toBe(160_000)
    })
  )
})
