/**
 * The `schedules` routes over the schedules of the server's database. The server also runs the
 * scheduler (`KEEL_SCHEDULER`, on by default), so ticks fire while it runs.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as QueueError from "@keel/queue/QueueError"
import * as Schedule from "@keel/queue/Schedule"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { KeelApi } from "../Api.js"

/** The `schedules` group. */
export const layer = HttpApiBuilder.group(KeelApi, "schedules", (handlers) =>
  Effect.gen(function* () {
    const schedules = yield* Schedule.Schedules
    const found = (name: string) => (info: Option.Option<Schedule.ScheduleInfo>) =>
      Option.match(info, {
        onNone: () => Effect.fail(new QueueError.ScheduleNotFound({ name })),
        onSome: Effect.succeed
      })
    return handlers
      .handle("list", ({ urlParams }) =>
        Effect.map(schedules.list(urlParams.queue), (all) => ({ schedules: all }))
      )
      .handle("create", ({ payload }) =>
        schedules.create({
          name: payload.name,
          queue: payload.queue,
          cron: payload.cron,
          timeZone: payload.timeZone,
          every: payload.everyMs,
          payload: payload.payload,
          priority: payload.priority,
          backfill: payload.backfillMs
        })
      )
      .handle("get", ({ path }) => Effect.flatMap(schedules.get(path.name), found(path.name)))
      .handle("pause", ({ path }) => schedules.pause(path.name))
      .handle("resume", ({ path }) => schedules.resume(path.name))
      .handle("delete", ({ path }) => schedules.remove(path.name))
  })
)
