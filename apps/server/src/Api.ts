/**
 * Keel's HTTP API: queues, reservations, cursors, schedules, the event log (`EventsApi.ts`) and the
 * system routes, as one `HttpApi`; the errors and their statuses are in `ApiErrors.ts`. Request
 * and response bodies reuse the packages' Schemas; every typed error an endpoint can return is
 * declared on it with its status, so `/openapi.json` documents it and the server encodes it as
 * `{ _tag, message, ...fields }`.
 *
 * Statuses: 400 invalid input, 404 unknown queue / reservation / cursor, 409 a conflict with the
 * current state (name taken, lease lost, messages in flight, no free port…), 413 a body, payload or
 * batch over its limit, 415 a body that is not JSON, 503 the database failed or the outcome is
 * unknown. Requests that are not valid HTTP, or too slow, are answered before routing (`Transport`).
 */
import * as HttpApi from "@effect/platform/HttpApi"
import * as OpenApi from "@effect/platform/OpenApi"
import { CursorsGroup } from "./CursorsApi.js"
import { DashboardGroup } from "./DashboardApi.js"
import { EventsGroup } from "./EventsApi.js"
import { completeDocument } from "./OpenApiDocument.js"
import { QueuesGroup } from "./QueuesApi.js"
import { ReservationsGroup } from "./ReservationsApi.js"
import { SchedulesGroup } from "./SchedulesApi.js"
import { SystemGroup } from "./SystemApi.js"

export * from "./CursorsApi.js"
export * from "./DashboardApi.js"
export * from "./OpenApiDocument.js"
export * from "./QueuesApi.js"
export * from "./ReservationsApi.js"
export * from "./SchedulesApi.js"
export * from "./SystemApi.js"

/** The API's version, as the OpenAPI document states it. */
export const version = "0.1.0"

/** Keel's HTTP API. */
export class KeelApi extends HttpApi.make("keel")
  .add(QueuesGroup)
  .add(ReservationsGroup)
  .add(CursorsGroup)
  .add(SchedulesGroup)
  .add(EventsGroup)
  .add(SystemGroup)
  .add(DashboardGroup)
  .annotateContext(
    OpenApi.annotations({
      title: "Keel",
      version,
      description:
        "Durable queues, port reservations and stream cursors over one SQL database (SQLite by default, " +
        "PostgreSQL for many machines). Errors are JSON `{ _tag, message, ...fields }`. When the server " +
        "runs with KEEL_TOKEN, every route but /health needs `Authorization: Bearer <token>`.",
      transform: completeDocument
    })
  ) {}
