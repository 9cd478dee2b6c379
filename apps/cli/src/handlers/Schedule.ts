/**
 * The programs of `keel schedule …` (loaded on demand): each provides the database, the queue
 * service and the schedules over them. `run` fires due ticks until SIGINT/SIGTERM, then exits 0.
 */
import * as Schedule from "@keel/queue/Schedule"
import * as Schemas from "@keel/queue/Schemas"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import type { CreateInput, ListInput, NameInput, RunInput } from "../commands/Schedule.js"
import { InvalidInput } from "../Failure.js"
import * as Layers from "../Layers.js"
import * as Output from "../Output.js"
import * as Parse from "../Parse.js"
import { Shutdown } from "../Shutdown.js"
import * as Tracing from "../Tracing.js"

const withSchedules = <A, E, R>(program: Effect.Effect<A, E, R>) => Effect.provide(program, Layers.schedules)

const iso = (ms: number | null): string =>
  ms === null || ms >= Number.MAX_SAFE_INTEGER ? "-" : new Date(ms).toISOString()

const encode = (info: Schedule.ScheduleInfo) => ({
  name: info.name,
  queue: info.queue,
  cron: info.cron,
  timeZone: info.timeZone,
  everyMs: info.everyMs,
  payload: info.payload,
  priority: info.priority,
  backfillMs: info.backfillMs,
  paused: info.paused,
  nextAt: iso(info.nextAt),
  lastTickAt: iso(info.lastTickAt)
})

const table = (schedules: ReadonlyArray<Schedule.ScheduleInfo>): string =>
  Output.table(
    ["NAME", "QUEUE", "WHEN", "NEXT", "LAST", "STATE"],
    schedules.map((info) => [
      info.name,
      info.queue,
      info.cron === null ? `every ${info.everyMs ?? 0}ms` : `${info.cron} (${info.timeZone ?? "UTC"})`,
      info.paused ? "-" : iso(info.nextAt),
      iso(info.lastTickAt),
      info.paused ? "paused" : "active"
    ])
  )

/** `keel schedule create`. */
export const create = (input: CreateInput) =>
  withSchedules(
    Effect.gen(function* () {
      const schedules = yield* Schedule.Schedules
      const every = yield* Parse.optionalDuration("every", input.every)
      const backfill = yield* Parse.optionalDuration("backfill", input.backfill)
      const payload = Option.isSome(input.payload) ? yield* Schemas.parsePayload(input.payload.value) : null
      const created = yield* schedules.create({
        name: input.name,
        queue: input.queue,
        cron: Option.getOrUndefined(input.cron),
        timeZone: Option.getOrUndefined(input.timeZone),
        every,
        backfill,
        payload,
        priority: Option.getOrUndefined(input.priority)
      })
      yield* Output.confirmation(
        { schedule: encode(created) },
        () => `schedule ${created.name} created; next tick ${iso(created.nextAt)}`
      )
    })
  )

/** `keel schedule list`. */
export const list = (input: ListInput) =>
  withSchedules(
    Effect.gen(function* () {
      const all = yield* (yield* Schedule.Schedules).list(Option.getOrUndefined(input.queue))
      yield* Output.result({ schedules: all.map(encode) }, () => (all.length === 0 ? "" : table(all)))
    })
  )

/** `keel schedule pause`. */
export const pause = (input: NameInput) =>
  withSchedules(
    Effect.gen(function* () {
      const paused = yield* (yield* Schedule.Schedules).pause(input.name)
      yield* Output.confirmation({ schedule: encode(paused) }, () => `schedule ${paused.name} paused`)
    })
  )

/** `keel schedule resume`. */
export const resume = (input: NameInput) =>
  withSchedules(
    Effect.gen(function* () {
      const resumed = yield* (yield* Schedule.Schedules).resume(input.name)
      yield* Output.confirmation(
        { schedule: encode(resumed) },
        () => `schedule ${resumed.name} resumed; next tick ${iso(resumed.nextAt)}`
      )
    })
  )

/** `keel schedule delete`. */
export const remove = (input: NameInput) =>
  withSchedules(
    Effect.gen(function* () {
      yield* (yield* Schedule.Schedules).remove(input.name)
      yield* Output.confirmation({ deleted: input.name }, () => `schedule ${input.name} deleted`)
    })
  )

/** `keel schedule run`: the scheduler, until SIGINT/SIGTERM interrupts it. */
export const run = (input: RunInput) =>
  Effect.gen(function* () {
    const pollMs = yield* Parse.optionalDuration("poll-interval", input.pollInterval)
    if (pollMs !== undefined && pollMs < 10) {
      return yield* new InvalidInput({ source: "--poll-interval", reason: "it must be at least 10ms" })
    }
    yield* Output.note("scheduler running; SIGINT or SIGTERM stops it")
    yield* Layer.launch(
      Schedule.layerRunner({ pollInterval: pollMs === undefined ? undefined : `${pollMs} millis` }).pipe(
        Layer.provide(Layers.schedules)
      )
    ).pipe(
      // Ticks start their own traces, not TRACEPARENT's.
      Tracing.detached,
      // A signal is how the scheduler is stopped; reaching here, the database has been closed.
      Effect.onExit((exit) =>
        Exit.isInterrupted(exit) ? Effect.flatMap(Shutdown, (clean) => Ref.set(clean, true)) : Effect.void
      )
    )
  })
