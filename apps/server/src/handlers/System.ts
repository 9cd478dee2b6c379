/**
 * `GET /health` and `GET /metrics`. Health runs one real read through the queue service (the list
 * of queues: a round trip to the database that also proves Keel's schema is there; on SQLite it
 * waits behind a long write transaction like any request) — once, without the retry policy, so it
 * reports the database as it is now — and answers 503 when it fails or takes longer than
 * `healthTimeout`. The app itself holds no SQL. Metrics refresh every queue's gauges first, then
 * render every Effect metric of the process as Prometheus text.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as Queue from "@keel/queue/Queue"
import * as Retry from "@keel/sql/Retry"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { KeelApi } from "../Api.js"
import { Unhealthy } from "../HttpError.js"
import * as Prometheus from "../Prometheus.js"

/** How long the database may take to answer the health check. */
export const healthTimeout = Duration.seconds(5)

/** How long refreshing the queue gauges may delay a scrape; past it, the last values are served. */
export const gaugeRefreshTimeout = Duration.seconds(5)

/** The `system` group. */
export const layer = HttpApiBuilder.group(KeelApi, "system", (handlers) =>
  Effect.gen(function* () {
    const queue = yield* Queue.Queues
    const probe = queue.listQueues.pipe(
      Retry.withPolicy(Schedule.stop),
      Effect.timeoutFail({
        duration: healthTimeout,
        onTimeout: () =>
          new Unhealthy({
            status: "unavailable",
            reason: `no answer within ${Duration.format(healthTimeout)}`
          })
      }),
      Effect.catchTag("QueueStoreError", (error) =>
        Effect.fail(
          new Unhealthy({ status: "unavailable", reason: `${error.cause._tag}: ${error.cause.message}` })
        )
      )
    )
    const refreshGauges = queue.metricsAll.pipe(
      Effect.timeout(gaugeRefreshTimeout),
      Effect.catchAll((error) => Effect.logWarning("metrics: queue gauges not refreshed", error.message))
    )
    return handlers
      .handle("health", () => Effect.as(probe, { status: "ok" as const }))
      .handle("metrics", () => Effect.zipRight(refreshGauges, Prometheus.scrape))
  })
)
