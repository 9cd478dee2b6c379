/**
 * The cursor store's metrics, each tagged with `namespace`: dirty cursors (gauge), flushes
 * (counter, tagged `outcome` = `committed` | `failed`), rows flushed, flush retries, stale writes
 * ignored (tagged `source` = `set` | `flush`) and flush latency (a timer histogram).
 */
import { LabelledMetric } from "@keel/sql"
import { Metric } from "effect"

const descriptions = {
  dirty: "Cursors set in memory and not yet persisted",
  flushes: "Flush transactions, by outcome",
  rowsFlushed: "Cursors written (inserted or advanced) by flushes",
  retries: "Flush transactions re-run after a transient failure",
  staleWrites: "Positions ignored because a newer one was already held or stored",
  flushLatency: "How long a flush took, retries included"
}

/** The store's metrics (see the module's doc for their tags). */
export const metrics = {
  dirty: Metric.gauge("keel_cursor_dirty", { description: descriptions.dirty }),
  flushes: Metric.counter("keel_cursor_flushes_total", { description: descriptions.flushes }),
  rowsFlushed: Metric.counter("keel_cursor_rows_flushed_total", { description: descriptions.rowsFlushed }),
  retries: Metric.counter("keel_cursor_flush_retries_total", { description: descriptions.retries }),
  staleWrites: Metric.counter("keel_cursor_stale_writes_total", { description: descriptions.staleWrites }),
  flushLatency: LabelledMetric.timer("keel_cursor_flush_duration", descriptions.flushLatency, {})
}

/**
 * The metrics of one namespace, labelled once when its store starts (`LabelledMetric`: an update
 * costs no key building): the same series as `metrics` tagged with `namespace` (and `outcome`,
 * `source`).
 */
export const forNamespace = (namespace: string) => ({
  dirty: LabelledMetric.gauge("keel_cursor_dirty", descriptions.dirty, { namespace }),
  committedFlushes: LabelledMetric.counter("keel_cursor_flushes_total", descriptions.flushes, {
    namespace,
    outcome: "committed"
  }),
  failedFlushes: LabelledMetric.counter("keel_cursor_flushes_total", descriptions.flushes, {
    namespace,
    outcome: "failed"
  }),
  rowsFlushed: LabelledMetric.counter("keel_cursor_rows_flushed_total", descriptions.rowsFlushed, {
    namespace
  }),
  retries: LabelledMetric.counter("keel_cursor_flush_retries_total", descriptions.retries, { namespace }),
  staleSets: LabelledMetric.counter("keel_cursor_stale_writes_total", descriptions.staleWrites, {
    namespace,
    source: "set"
  }),
  staleFlushes: LabelledMetric.counter("keel_cursor_stale_writes_total", descriptions.staleWrites, {
    namespace,
    source: "flush"
  }),
  flushLatency: LabelledMetric.timer("keel_cursor_flush_duration", descriptions.flushLatency, { namespace })
})

/** The metrics of one namespace. */
export type NamespaceMetrics = ReturnType<typeof forNamespace>
