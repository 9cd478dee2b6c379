/**
 * The queue's Effect metrics. Gauges (tagged `queue`) hold the counts of the last metrics query
 * for that queue; counters (tagged `queue`) count what this process did. Export them with any
 * Effect metrics exporter (OpenTelemetry, Prometheus).
 */
import * as LabelledMetric from "@keel/sql/LabelledMetric"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import type * as MetricLabel from "effect/MetricLabel"
import type { QueueMetrics } from "./Schemas.js"

/** Visible messages, as of the last metrics query. */
export const depth = Metric.gauge("keel_queue_depth", { description: "Messages visible now" })
/** Leased messages whose lease has not expired. */
export const inFlight = Metric.gauge("keel_queue_in_flight", {
  description: "Messages leased, lease not expired"
})
/** Messages sent or released with a delay that has not passed. */
export const delayed = Metric.gauge("keel_queue_delayed", { description: "Messages waiting for their delay" })
/** Age of the oldest message in the queue, in milliseconds (0 when empty). */
export const oldestMessageAge = Metric.gauge("keel_queue_oldest_message_age_ms", {
  description: "Age of the oldest message in the queue (ms)"
})
/** Archived (acknowledged) messages within retention. */
export const archived = Metric.gauge("keel_queue_archived", { description: "Archived messages" })
/** Dead letters. */
export const dead = Metric.gauge("keel_queue_dead", { description: "Dead-lettered messages" })

/** Each counter's name and description, for its labelled variants (`count`). */
const specs = new WeakMap<
  Metric.Metric.Counter<number>,
  { readonly name: string; readonly description: string }
>()

/** A counter named `name`, remembered so that `count` can label it once per queue. */
const counter = (name: string, description: string): Metric.Metric.Counter<number> => {
  const metric = Metric.counter(name, { description })
  specs.set(metric, { name, description })
  return metric
}

/** Messages this process sent. */
export const sent = counter("keel_queue_sent_total", "Messages sent")
/** Deliveries this process leased. */
export const leased = counter("keel_queue_leased_total", "Messages leased by read")
/** Messages this process acknowledged, tagged `action` (`delete` or `archive`). */
export const acknowledged = counter(
  "keel_queue_acknowledged_total",
  "Messages acknowledged (deleted or archived)"
)
/** Messages this process released back to the queue. */
export const released = counter("keel_queue_released_total", "Messages released")
/** Messages this process moved to the dead letters. */
export const deadLettered = counter("keel_queue_dead_lettered_total", "Messages moved to the dead letters")

// A metric tagged on every update builds a new key and hashes it; a send should not pay that every
// time: each (counter, queue, tags) gets one labelled metric (`LabelledMetric`), made once.
const tagged = new WeakMap<Metric.Metric.Counter<number>, Map<string, Metric.Metric.Counter<number>>>()
const taggedLimit = 10_000

/** The labelled variant of `counter` for `queue` and `tags`, made once. */
const labelled = (
  counter: Metric.Metric.Counter<number>,
  queue: string,
  tags: Readonly<Record<string, string>>
): Metric.Metric.Counter<number> => {
  const extra = Object.entries(tags)
  const key =
    extra.length === 0 ? queue : [queue, ...extra.map(([name, value]) => `${name}=${value}`)].join("\u0000")
  let byKey = tagged.get(counter)
  if (byKey === undefined) {
    byKey = new Map()
    tagged.set(counter, byKey)
  }
  let metric = byKey.get(key)
  if (metric === undefined) {
    const spec = specs.get(counter)
    if (spec === undefined) {
      metric = Metric.tagged(counter, "queue", queue)
      for (const [name, value] of extra) metric = Metric.tagged(metric, name, value)
    } else metric = LabelledMetric.counter(spec.name, spec.description, { queue, ...tags })
    if (byKey.size >= taggedLimit) byKey.clear()
    byKey.set(key, metric)
  }
  return metric
}

/** Adds `amount` to a counter for `queue` (and extra tags). */
export const count = (
  counter: Metric.Metric.Counter<number>,
  queue: string,
  amount: number,
  tags: Readonly<Record<string, string>> = {}
): Effect.Effect<void> =>
  amount === 0 ? Effect.void : Metric.incrementBy(labelled(counter, queue, tags), amount)

/**
 * `count` in the caller's synchronous step, with the labels the calling fiber adds to its metrics
 * (`FiberRef.currentMetricLabels`, as `Effect.tagMetrics` sets them): what `count` does when run.
 */
export const countNow = (
  counter: Metric.Metric.Counter<number>,
  queue: string,
  amount: number,
  fiberLabels: ReadonlyArray<MetricLabel.MetricLabel>
): void => {
  if (amount !== 0) labelled(counter, queue, {}).unsafeUpdate(amount, fiberLabels)
}

/** Sets every gauge of `metrics.queue` from one metrics query. */
export const record = (metrics: QueueMetrics): Effect.Effect<void> => {
  const set = (gauge: Metric.Metric.Gauge<number>, value: number) =>
    Metric.set(Metric.tagged(gauge, "queue", metrics.queue), value)
  return Effect.all(
    [
      set(depth, metrics.depth),
      set(inFlight, metrics.inFlight),
      set(delayed, metrics.delayed),
      set(oldestMessageAge, metrics.oldestMessageAgeMs ?? 0),
      set(archived, metrics.archived),
      set(dead, metrics.dead)
    ],
    { discard: true }
  )
}
