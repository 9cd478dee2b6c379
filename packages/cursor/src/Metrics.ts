/**
 * The cursor store's metrics, each tagged with `namespace`: dirty cursors (gauge), flushes
 * (counter, tagged `outcome` = `committed` | `failed`), rows flushed, flush retries, stale writes
 * ignored (tagged `source` = `set` | `flush`) and flush latency (a timer histogram).
 */
import * as LabelledMetric from "@keel/sql/LabelledMetric"
import * as Metric from "effect/Metric"

/** Each series' name and description, shared by `metrics` and `forNamespace`. */
const series = {
  dirty: ["keel_cursor_dirty", "Cursors set in memory and not yet persisted"],
  flushes: ["keel_cursor_flushes_total", "Flush transactions, by outcome"],
  rowsFlushed: ["keel_cursor_rows_flushed_total", "Cursors written (inserted or advanced) by flushes"],
  retries: ["keel_cursor_flush_retries_total", "Flush transactions re-run after a transient failure"],
  staleWrites: [
    "keel_cursor_stale_writes_total",
    "Positions ignored because a newer one was already held or stored"
  ],
  flushLatency: ["keel_cursor_flush_duration", "How long a flush took, retries included"]
} as const

/** The store's metrics (see the module's doc for their tags). */
export const metrics = {
  dirty: Metric.gauge(series.dirty[0], { description: series.dirty[1] }),
  flushes: Metric.counter(series.flushes[0], { description: series.flushes[1] }),
  rowsFlushed: Metric.counter(series.rowsFlushed[0], { description: series.rowsFlushed[1] }),
  retries: Metric.counter(series.retries[0], { description: series.retries[1] }),
  staleWrites: Metric.counter(series.staleWrites[0], { description: series.staleWrites[1] }),
  flushLatency: LabelledMetric.timer(...series.flushLatency, {})
}

/**
 * The metrics of one namespace, labelled once when its store starts (`LabelledMetric`: an update
 * costs no key building): the same series as `metrics` tagged with `namespace` (and `outcome`,
 * `source`).
 */
export const forNamespace = (namespace: string) => ({
  dirty: LabelledMetric.gauge(...series.dirty, { namespace }),
  committedFlushes: LabelledMetric.counter(...series.flushes, { namespace, outcome: "committed" }),
  failedFlushes: LabelledMetric.counter(...series.flushes, { namespace, outcome: "failed" }),
  rowsFlushed: LabelledMetric.counter(...series.rowsFlushed, { namespace }),
  retries: LabelledMetric.counter(...series.retries, { namespace }),
  staleSets: LabelledMetric.counter(...series.staleWrites, { namespace, source: "set" }),
  staleFlushes: LabelledMetric.counter(...series.staleWrites, { namespace, source: "flush" }),
  flushLatency: LabelledMetric.timer(...series.flushLatency, { namespace })
})

/** The metrics of one namespace. */
export type NamespaceMetrics = ReturnType<typeof forNamespace>
