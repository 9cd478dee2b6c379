/** The schedule routes of Keel's HTTP API (cron and interval messages), with their typed errors. */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import * as QueueError from "@keel/queue/QueueError"
import * as Schedule from "@keel/queue/Schedule"
import * as Schema from "effect/Schema"
import { answer, QueueErrors } from "./ApiErrors.js"
import { bodyErrors } from "./ApiParams.js"

const Q = QueueErrors

/** A schedule name in a path; the service validates it. */
const scheduleName = HttpApiSchema.param("name", Schema.String)

/** `POST /schedules`: `cron` (with `timeZone`) or `everyMs`; durations in milliseconds. */
export const CreateSchedule = Schema.Struct({
  name: Schema.String,
  queue: Schema.String,
  cron: Schema.optional(Schema.String),
  timeZone: Schema.optional(Schema.String),
  everyMs: Schema.optional(Schema.Number),
  payload: Schema.optional(Schema.Unknown),
  priority: Schema.optional(Schema.Number),
  backfillMs: Schema.optional(Schema.Number)
})

/** `{ schedules }`: schedules by name. */
export const ScheduleList = Schema.Struct({ schedules: Schema.Array(Schedule.ScheduleInfo) })

/** The schedules' errors. */
export const ScheduleErrors = {
  InvalidSchedule: answer(QueueError.InvalidSchedule, "InvalidSchedule", 400),
  ScheduleNotFound: answer(QueueError.ScheduleNotFound, "ScheduleNotFound", 404),
  ScheduleAlreadyExists: answer(QueueError.ScheduleAlreadyExists, "ScheduleAlreadyExists", 409)
}

const S = ScheduleErrors

/** The schedule routes. */
export const SchedulesGroup = HttpApiGroup.make("schedules")
  .add(
    HttpApiEndpoint.get("list", "/schedules")
      .setUrlParams(Schema.Struct({ queue: Schema.optional(Schema.String) }))
      .addSuccess(ScheduleList)
      .annotate(OpenApi.Summary, "Every schedule (of one queue with ?queue=), by name")
  )
  .add(
    HttpApiEndpoint.post("create", "/schedules")
      .setPayload(CreateSchedule)
      .addError(bodyErrors)
      .addSuccess(Schedule.ScheduleInfo, { status: 201 })
      .addError(S.InvalidSchedule)
      .addError(S.ScheduleAlreadyExists)
      .addError(Q.InvalidQueueName)
      .addError(Q.QueueNotFound)
      .addError(Q.InvalidPayload)
      .addError(Q.PayloadTooLarge)
      .annotate(OpenApi.Summary, "Create a schedule: cron (seconds optional, timeZone) or everyMs")
  )
  .add(
    HttpApiEndpoint.get("get")`/schedules/${scheduleName}`
      .addSuccess(Schedule.ScheduleInfo)
      .addError(S.ScheduleNotFound)
      .annotate(OpenApi.Summary, "One schedule, with its next and last tick")
  )
  .add(
    HttpApiEndpoint.post("pause")`/schedules/${scheduleName}/pause`
      .addSuccess(Schedule.ScheduleInfo)
      .addError(S.ScheduleNotFound)
      .annotate(OpenApi.Summary, "Stop a schedule; its ticks until resume are skipped")
  )
  .add(
    HttpApiEndpoint.post("resume")`/schedules/${scheduleName}/resume`
      .addSuccess(Schedule.ScheduleInfo)
      .addError(S.ScheduleNotFound)
      .annotate(OpenApi.Summary, "Start a paused schedule again, from its next tick")
  )
  .add(
    HttpApiEndpoint.del("delete")`/schedules/${scheduleName}`
      .addSuccess(HttpApiSchema.NoContent)
      .addError(S.ScheduleNotFound)
      .annotate(OpenApi.Summary, "Delete a schedule (messages it already sent stay)")
  )
  .addError(Q.QueueStoreError)
  .annotate(OpenApi.Description, "Recurring messages: each tick of a cron or interval enqueued exactly once")
