/**
 * The last hour of every queue, for the dashboard: a background fiber samples each queue's depth
 * (`Queue.metricsAll`) and this process's send and acknowledge counters (`Metrics.sent`,
 * `Metrics.acknowledged`) every `interval`, and keeps the samples of the last hour in memory. The
 * history starts when the server does; nothing is stored in the database.
 */
import * as Metrics from "@keel/queue/Metrics"
import * as Queue from "@keel/queue/Queue"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"

/** One sample of one queue. */
export interface Sample {
  /** When it was taken (epoch milliseconds). */
  readonly at: number
  /** Visible messages. */
  readonly depth: number
  /** Messages sent through this process so far. */
  readonly sent: number
  /** Messages acknowledged (deleted or archived) through this process so far. */
  readonly acknowledged: number
}

/** How long samples are kept. */
export const window = Duration.hours(1)

/** How often the queues are sampled by default. */
export const defaultInterval = Duration.seconds(30)

/** The span rates are computed over (the oldest sample within it, to now). */
export const rateSpan = Duration.minutes(5)

/** The counters of one queue now: what this process sent and acknowledged. */
export const counters = (queue: string): Effect.Effect<Omit<Sample, "at" | "depth">> =>
  Effect.gen(function* () {
    const value = (metric: Metric.Metric.Counter<number>) =>
      Effect.map(Metric.value(metric), (state) => state.count)
    const sent = yield* value(Metric.tagged(Metrics.sent, "queue", queue))
    const byQueue = Metric.tagged(Metrics.acknowledged, "queue", queue)
    const deleted = yield* value(Metric.tagged(byQueue, "action", "delete"))
    const archived = yield* value(Metric.tagged(byQueue, "action", "archive"))
    return { sent, acknowledged: deleted + archived }
  })

/**
 * Per-minute rate of a counter between the oldest sample within `rateSpan` and `now`; null when no
 * sample is at least a second older than `now`.
 */
export const perMinute = (
  samples: ReadonlyArray<Sample>,
  now: Sample,
  pick: (sample: Sample) => number
): number | null => {
  const since = now.at - Duration.toMillis(rateSpan)
  const first = samples.find((sample) => sample.at >= since && now.at - sample.at >= 1000)
  if (first === undefined) return null
  return ((pick(now) - pick(first)) * 60_000) / (now.at - first.at)
}

/**
 * The history shown for a queue: the samples taken no later than `now`, then `now` itself — oldest
 * first. The sampling fiber runs concurrently with a request, so a sample may be stamped after the
 * request's own reading; that one describes the same moment and is left out rather than shown after
 * "now".
 */
export const upTo = (samples: ReadonlyArray<Sample>, now: Sample): ReadonlyArray<Sample> => [
  ...samples.filter((sample) => sample.at <= now.at),
  now
]

/** The samples kept: every queue's, oldest first. */
export class DepthHistory extends Context.Tag("@keel/server/DepthHistory")<
  DepthHistory,
  {
    /** The samples of `queue` within the last hour, oldest first. */
    readonly of: (queue: string) => Effect.Effect<ReadonlyArray<Sample>>
    /** Takes one sample of every queue now (what the background fiber does each interval). */
    readonly sample: Effect.Effect<void>
  }
>() {}

/** Adds `taken` to `kept`, dropping samples older than the window and queues left with none. */
const merge = (
  kept: ReadonlyMap<string, ReadonlyArray<Sample>>,
  taken: ReadonlyMap<string, Sample>,
  now: number
): ReadonlyMap<string, ReadonlyArray<Sample>> => {
  const oldest = now - Duration.toMillis(window)
  const next = new Map<string, ReadonlyArray<Sample>>()
  for (const queue of new Set([...kept.keys(), ...taken.keys()])) {
    const fresh = taken.get(queue)
    const samples = [...(kept.get(queue) ?? []), ...(fresh === undefined ? [] : [fresh])].filter(
      (sample) => sample.at >= oldest
    )
    if (samples.length > 0) next.set(queue, samples)
  }
  return next
}

/**
 * The history over the queue in context, sampled every `interval` by a fiber that lives as long as
 * the layer. A failed sample is logged and skipped (the dashboard shows a gap, not an error).
 */
export const layer = (interval: Duration.DurationInput = defaultInterval) =>
  Layer.scoped(
    DepthHistory,
    Effect.gen(function* () {
      const queue = yield* Queue.Queues
      const kept = yield* Ref.make<ReadonlyMap<string, ReadonlyArray<Sample>>>(new Map())
      const sample = Effect.gen(function* () {
        const all = yield* queue.metricsAll
        const at = yield* Clock.currentTimeMillis
        const taken = new Map<string, Sample>()
        for (const metrics of all) {
          const counted = yield* counters(metrics.queue)
          taken.set(metrics.queue, { at, depth: metrics.depth, ...counted })
        }
        yield* Ref.update(kept, (current) => merge(current, taken, at))
      }).pipe(Effect.catchAll((error) => Effect.logWarning("dashboard: queues not sampled", error.message)))
      yield* Effect.forkScoped(Effect.repeat(sample, Schedule.spaced(interval)))
      return DepthHistory.of({
        of: (name) => Effect.map(Ref.get(kept), (current) => current.get(name) ?? []),
        sample
      })
    })
  )

/** `layer` sampling every `KEEL_DASHBOARD_SAMPLE_INTERVAL` (a duration such as `"10 seconds"`; default 30 s). */
export const layerConfig = Layer.unwrapEffect(
  Effect.map(
    Config.withDefault(Config.duration("KEEL_DASHBOARD_SAMPLE_INTERVAL"), defaultInterval),
    (interval) => layer(interval)
  )
)
