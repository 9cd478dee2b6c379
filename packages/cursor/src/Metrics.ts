/**
 * The cursor store's metrics, each tagged with `namespace`: dirty cursors (gauge), flushes
 * (counter, tagged `outcome` = `committed` | `failed`), rows flushed, flush retries, stale writes
 * ignored (tagged `source` = `set` | `flush`) and flush latency (a timer histogram).
 */
import { Metric } from "effect"

/** The store's metrics (see the module's doc for their tags). */
export const metrics = {
  dirty: Metric.gauge("keel_cursor_dirty", { description: "Cursors set in memory and not yet persisted" }),
  flushes: Metric.counter("keel_cursor_flushes_total", { description: "Flush transactions, by outcome" }),
  rowsFlushed: Metric.counter("keel_cursor_rows_flushed_total", {
    description: "Cursors written (inserted or advanced) by flushes"
  }),
  retries: Metric.counter("keel_cursor_flush_retries_total", {
    description: "Flush transactions re-run after a transient failure"
  }),
  staleWrites: Metric.counter("keel_cursor_stale_writes_total", {
    description: "Positions ignored because a newer one was already held or stored"
  }),
  flushLatency: Metric.timer("keel_cursor_flush_duration", "How long a flush took, retries included")
}

/** The metrics of one namespace, tagged once when its store starts. */
export const forNamespace = (namespace: string) => {
  const flushes = Metric.tagged(metrics.flushes, "namespace", namespace)
  const staleWrites = Metric.tagged(metrics.staleWrites, "namespace", namespace)
  return {
    dirty: Metric.tagged(metrics.dirty, "namespace", namespace),
    committedFlushes: Metric.tagged(flushes, "outcome", "committed"),
    failedFlushes: Metric.tagged(flushes, "outcome", "failed"),
    rowsFlushed: Metric.tagged(metrics.rowsFlushed, "namespace", namespace),
    retries: Metric.tagged(metrics.retries, "namespace", namespace),
    staleSets: Metric.tagged(staleWrites, "source", "set"),
    staleFlushes: Metric.tagged(staleWrites, "source", "flush"),
    flushLatency: Metric.tagged(metrics.flushLatency, "namespace", namespace)
  }
}

/** The metrics of one namespace. */
export type NamespaceMetrics = ReturnType<typeof forNamespace>
