/**
 * Request logging and HTTP metrics. One log line per request, after its response is written:
 * method, path (never the query string, headers or body, so no token or payload reaches the log),
 * status and duration. The same request counts in `keel_http_requests_total` and
 * `keel_http_request_duration_seconds`, tagged with method and status.
 */
import type { HttpApp } from "@effect/platform"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as LabelledMetric from "@keel/sql/LabelledMetric"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import type * as Lifecycle from "./Lifecycle.js"

const requestsName = "keel_http_requests_total"
const requestsDescription = "HTTP requests answered, by method and status"
const durationName = "keel_http_request_duration_seconds"
const durationDescription = "HTTP request duration in seconds, by method and status"
const durationBoundaries = MetricBoundaries.exponential({ start: 0.0005, factor: 2, count: 16 })

/** Requests answered, tagged `method` and `status`. */
export const requests = Metric.counter(requestsName, { description: requestsDescription, incremental: true })

/** Time from a request's arrival to its response written, in seconds, tagged `method` and `status`. */
export const duration = Metric.histogram(durationName, durationBoundaries, durationDescription)

/** The status logged for a request whose client went away before its response. */
export const clientClosed = 499

// The series of a method and status, labelled once (`LabelledMetric`): a `Metric.tagged` metric
// builds, hashes and looks up a new key at every update, twice per request.
const labelled = new Map<string, readonly [Metric.Metric.Counter<number>, typeof duration]>()

const metricsFor = (method: string, status: number) => {
  const key = `${method} ${status}`
  let pair = labelled.get(key)
  if (pair === undefined) {
    const labels = { method, status: String(status) }
    pair = [
      LabelledMetric.counter(requestsName, requestsDescription, labels, { incremental: true }),
      LabelledMetric.histogram(durationName, durationBoundaries, durationDescription, labels)
    ]
    labelled.set(key, pair)
  }
  return pair
}

/** The path of a request URL, without its query string. */
export const pathOf = (url: string): string => {
  const query = url.indexOf("?")
  return query === -1 ? url : url.slice(0, query)
}

/**
 * The serving middleware: counts the request as in flight (for graceful shutdown) until its
 * response is written, then logs it and records its metrics. The clock is `performance.now()`:
 * two reads of Effect's `Clock` per request cost more than the log line they time.
 */
export const middleware =
  (lifecycle: Lifecycle.Service) =>
  <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
      const started = performance.now()
      return lifecycle.track(app).pipe(
        Effect.onExit((exit) => {
          const elapsedMs = performance.now() - started
          const status = Exit.isSuccess(exit) ? exit.value.status : clientClosed
          const method = request.method
          const path = pathOf(request.url)
          const [counter, histogram] = metricsFor(method, status)
          const logged = Effect.annotateLogs(Effect.logInfo(`${method} ${path} ${status}`), {
            method,
            path,
            status,
            durationMs: Math.round(elapsedMs * 10) / 10
          })
          // What `Metric.increment` and `Metric.update` do, with the fiber's metric labels, in this
          // step rather than as two more effects per request.
          return Effect.withFiberRuntime((fiber) => {
            const labels = fiber.getFiberRef(FiberRef.currentMetricLabels)
            counter.unsafeUpdate(1, labels)
            histogram.unsafeUpdate(elapsedMs / 1000, labels)
            return logged
          })
        })
      )
    })
