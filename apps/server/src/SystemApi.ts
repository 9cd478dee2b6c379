/** The system routes of Keel's HTTP API: health and Prometheus metrics. */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { ServerErrors } from "./ApiErrors.js"

/** `GET /health`: the database answered. */
export const Health = Schema.Struct({ status: Schema.Literal("ok") })

/** The system routes. */
export const SystemGroup = HttpApiGroup.make("system", { topLevel: true })
  .add(
    HttpApiEndpoint.get("health", "/health")
      .addSuccess(Health)
      .addError(ServerErrors.Unhealthy)
      .annotate(OpenApi.Summary, "Whether the database answers a query (no token needed)")
  )
  .add(
    HttpApiEndpoint.get("metrics", "/metrics")
      .addSuccess(HttpApiSchema.Text({ contentType: "text/plain; version=0.0.4; charset=utf-8" }))
      .annotate(OpenApi.Summary, "Prometheus metrics of this process")
  )
  .annotate(OpenApi.Description, "Health and metrics")
