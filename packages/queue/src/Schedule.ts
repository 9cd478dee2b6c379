/**
 * Schedules: a queue receives a message at every tick of a clock — a cron expression (seconds
 * optional, in an IANA time zone) or a fixed interval — exactly once, however many processes run
 * the scheduler (`layerRunner`) against the database.
 *
 * - Exactly once: firing is one write transaction (BEGIN IMMEDIATE on SQLite, `FOR UPDATE SKIP
 *   LOCKED` on PostgreSQL) that sends the tick's message and moves the schedule's `next_at` past
 *   it; each tick's message also carries the idempotency key `keel:schedule:<name>:<tick ms>`, so a
 *   tick can never be enqueued twice even by a transaction that is re-run.
 * - Missed ticks (no scheduler ran, or it was paused): with a `backfill` window, every tick within
 *   the window before now is enqueued (oldest first, at most 1,000); without one only the latest
 *   missed tick is, and only if it is at most a minute old. Ticks missed while paused are skipped:
 *   `resume` continues from the next tick.
 * - The message's payload and priority are the schedule's; deleting its queue deletes it.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Backend from "@keel/sql/Backend"
import * as Failure from "@keel/sql/Failure"
import * as Migrations from "@keel/sql/Migrations"
import * as Transaction from "@keel/sql/Transaction"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { valueDecoder } from "./internal/optionSchema.js"
import * as Ticks from "./internal/ticks.js"
import { Priority } from "./Options.js"
import { Queues, type SendError } from "./Queue.js"
import {
  type InvalidPayload,
  type InvalidQueueName,
  InvalidSchedule,
  type PayloadTooLarge,
  QueueNotFound,
  QueueStoreError,
  ScheduleAlreadyExists,
  ScheduleNotFound
} from "./QueueError.js"
import { encodePayload, parseQueueName } from "./Schemas.js"

const validPriority = valueDecoder(Priority)

/** How old the latest missed tick may be and still fire when a schedule has no backfill window. */
export const misfireGrace = Duration.minutes(1)

/** A schedule as stored. Times are epoch milliseconds. */
export class ScheduleInfo extends Schema.Class<ScheduleInfo>("ScheduleInfo")({
  name: Schema.String,
  queue: Schema.String,
  /** The cron expression, or null for an interval schedule. */
  cron: Schema.NullOr(Schema.String),
  /** The cron expression's IANA time zone (null for an interval schedule). */
  timeZone: Schema.NullOr(Schema.String),
  /** The interval in milliseconds, or null for a cron schedule. */
  everyMs: Schema.NullOr(Schema.Number),
  /** The JSON value each tick's message carries. */
  payload: Schema.Unknown,
  priority: Schema.Int,
  /** How far back missed ticks are enqueued, in milliseconds (0: only the latest, if recent). */
  backfillMs: Schema.Number,
  paused: Schema.Boolean,
  /** The next tick that will fire (while not paused). */
  nextAt: Schema.Number,
  /** The last tick that fired, if any. */
  lastTickAt: Schema.NullOr(Schema.Number),
  createdAt: Schema.Number
}) {}

/** What `create` needs: `cron` or `every`, not both. */
export interface NewSchedule {
  /** 1–64 of `a-z`, `0-9`, `_`, `-` (as queue names). */
  readonly name: string
  readonly queue: string
  /** Cron expression: 5 fields, or 6 with seconds first (`*\/10 * * * * *`). */
  readonly cron?: string | undefined
  /** IANA time zone of `cron` (`Europe/Paris`). Default UTC. */
  readonly timeZone?: string | undefined
  /** A fixed interval (at least one second), counted from the schedule's creation. */
  readonly every?: Duration.DurationInput | undefined
  /** Each message's payload (any JSON value). Default null. */
  readonly payload?: unknown
  /** Each message's priority (lower first). Default 0. */
  readonly priority?: number | undefined
  /** Enqueue ticks missed within this window before now. Default 0 (see the module comment). */
  readonly backfill?: Duration.DurationInput | undefined
}

/** One tick enqueued by a firing. */
export interface FiredTick {
  readonly schedule: string
  readonly tick: number
  readonly messageId: number
}

/** What a firing did, and when the next tick is due (undefined: no active schedule). */
export interface Fired {
  readonly ticks: ReadonlyArray<FiredTick>
  readonly nextAt: number | undefined
}

/** Errors of `create`. */
export type CreateError =
  | InvalidSchedule
  | InvalidQueueName
  | QueueNotFound
  | ScheduleAlreadyExists
  | InvalidPayload
  | PayloadTooLarge
  | QueueStoreError

/** The schedules service. */
export interface Service {
  /** Creates a schedule; its first tick is the first one after now. */
  readonly create: (schedule: NewSchedule) => Effect.Effect<ScheduleInfo, CreateError>
  /** Every schedule (of `queue`, if given), by name. */
  readonly list: (queue?: string) => Effect.Effect<ReadonlyArray<ScheduleInfo>, QueueStoreError>
  readonly get: (name: string) => Effect.Effect<Option.Option<ScheduleInfo>, QueueStoreError>
  /** Stops firing; ticks until `resume` are skipped. */
  readonly pause: (name: string) => Effect.Effect<ScheduleInfo, ScheduleNotFound | QueueStoreError>
  /** Fires again from the first tick after now. */
  readonly resume: (name: string) => Effect.Effect<ScheduleInfo, ScheduleNotFound | QueueStoreError>
  readonly remove: (name: string) => Effect.Effect<void, ScheduleNotFound | QueueStoreError>
  /** Enqueues every due tick of every active schedule, now (the scheduler's step). */
  readonly fire: Effect.Effect<Fired, SendError | QueueStoreError>
  /** `fire` as if the time were `now` (epoch ms): for tests and tools. */
  readonly fireAt: (now: number) => Effect.Effect<Fired, SendError | QueueStoreError>
}

/** The schedules of the database in context. */
export class Schedules extends Context.Tag("@keel/queue/Schedules")<Schedules, Service>() {}

/**
 * The schedules' table in a dialect: identical but for the type of epoch milliseconds and ids
 * (`INTEGER` on SQLite, `BIGINT` on PostgreSQL). `bigint` is one of those two constants. The text
 * (indentation included) is what version 1 was first applied with: its checksum must not change.
 */
const schedulesTable = (bigint: "INTEGER" | "BIGINT"): ReadonlyArray<string> => [
  `CREATE TABLE keel_schedules (
          name TEXT PRIMARY KEY,
          queue_id ${bigint} NOT NULL REFERENCES keel_queue_queues (id) ON DELETE CASCADE,
          payload TEXT NOT NULL,
          priority INTEGER NOT NULL,
          cron TEXT,
          time_zone TEXT,
          every_ms ${bigint},
          backfill_ms ${bigint} NOT NULL,
          paused INTEGER NOT NULL CHECK (paused IN (0, 1)),
          next_at ${bigint} NOT NULL,
          last_tick_at ${bigint},
          created_at ${bigint} NOT NULL,
          updated_at ${bigint} NOT NULL,
          CHECK ((cron IS NULL) <> (every_ms IS NULL))
        )`,
  "CREATE INDEX keel_schedules_due ON keel_schedules (paused, next_at)",
  "CREATE INDEX keel_schedules_queue ON keel_schedules (queue_id)"
]

/** The schedules' table, recorded in `keel_schedule_migrations`; it refers to the queue's tables. */
export const migrations: Migrations.MigrationSet = {
  name: "schedule",
  migrations: [
    { version: 1, name: "schedules", sqlite: schedulesTable("INTEGER"), pg: schedulesTable("BIGINT") }
  ]
}

/** A stored row (PostgreSQL returns BIGINT as text). */
interface Row {
  readonly name: string
  readonly queue: string
  readonly payload: string
  readonly priority: number | string
  readonly cron: string | null
  readonly time_zone: string | null
  readonly every_ms: number | string | null
  readonly backfill_ms: number | string
  readonly paused: number | string
  readonly next_at: number | string
  readonly last_tick_at: number | string | null
  readonly created_at: number | string
}

const toInfo = (row: Row): ScheduleInfo =>
  new ScheduleInfo(
    {
      name: row.name,
      queue: row.queue,
      cron: row.cron,
      timeZone: row.time_zone,
      everyMs: row.every_ms === null ? null : Number(row.every_ms),
      payload: JSON.parse(row.payload),
      priority: Number(row.priority),
      backfillMs: Number(row.backfill_ms),
      paused: Number(row.paused) === 1,
      nextAt: Number(row.next_at),
      lastTickAt: row.last_tick_at === null ? null : Number(row.last_tick_at),
      createdAt: Number(row.created_at)
    },
    true
  )

/** The clock of a stored schedule (its definition was validated when it was created). */
const clockOf = (row: Row): Ticks.Clock | undefined => {
  if (row.cron === null) {
    return { _tag: "Every", everyMs: Number(row.every_ms), anchor: Number(row.created_at) }
  }
  const cron = Ticks.parseCron(row.cron, row.time_zone ?? undefined)
  return Either.isRight(cron) ? { _tag: "Cron", cron: cron.right } : undefined
}

/** The ticks a firing at `now` enqueues for `row` (see the module comment), oldest first. */
const dueTicks = (clock: Ticks.Clock, row: Row, now: number): ReadonlyArray<number> => {
  const nextAt = Number(row.next_at)
  const backfill = Number(row.backfill_ms)
  if (backfill > 0) return Ticks.between(clock, Math.max(nextAt, now - backfill), now)
  const latest = Ticks.latestAtOrBefore(clock, now)
  return latest !== undefined && latest >= nextAt && now - latest <= Duration.toMillis(misfireGrace)
    ? [latest]
    : []
}

/** A schedule that never fires again (a cron that no longer matches any date) waits here. */
const never = Number.MAX_SAFE_INTEGER

const durationMs = (
  input: Duration.DurationInput | undefined,
  what: string
): Either.Either<number, InvalidSchedule> => {
  if (input === undefined) return Either.right(0)
  if (typeof input === "number" && !(Number.isFinite(input) && input >= 0)) {
    return Either.left(
      new InvalidSchedule({ reason: `${what} must be a finite, non-negative number of milliseconds` })
    )
  }
  const decoded = Duration.decodeUnknown(input)
  if (Option.isNone(decoded) || !Duration.isFinite(decoded.value)) {
    return Either.left(new InvalidSchedule({ reason: `${what} is not a finite duration` }))
  }
  return Either.right(Math.round(Duration.toMillis(decoded.value)))
}

/** Checks a new schedule; its clock and the stored columns. */
const validate = (schedule: NewSchedule, now: number) =>
  Effect.gen(function* () {
    const name = yield* Either.mapLeft(
      parseQueueName(schedule.name),
      (error) => new InvalidSchedule({ reason: `name: ${error.reason}` })
    )
    const queue = yield* parseQueueName(schedule.queue)
    if ((schedule.cron === undefined) === (schedule.every === undefined)) {
      return yield* new InvalidSchedule({ reason: "give either cron or every" })
    }
    const backfillMs = yield* durationMs(schedule.backfill, "backfill")
    if (backfillMs < 0) return yield* new InvalidSchedule({ reason: "backfill is negative" })
    const priority = yield* Either.mapLeft(
      schedule.priority === undefined ? Either.right(0) : validPriority("priority", schedule.priority),
      (error) => new InvalidSchedule({ reason: `priority must be ${error.expected}` })
    )
    const payload = yield* encodePayload(schedule.payload ?? null, 1024 * 1024)
    let clock: Ticks.Clock
    if (schedule.cron !== undefined) {
      if (typeof schedule.cron !== "string" || schedule.cron.length > 256) {
        return yield* new InvalidSchedule({ reason: "cron must be a string of at most 256 characters" })
      }
      const parsed = Ticks.parseCron(schedule.cron, schedule.timeZone)
      if (Either.isLeft(parsed)) return yield* new InvalidSchedule({ reason: `cron: ${parsed.left}` })
      clock = { _tag: "Cron", cron: parsed.right }
    } else {
      if (schedule.timeZone !== undefined) {
        return yield* new InvalidSchedule({ reason: "timeZone applies to cron schedules only" })
      }
      const everyMs = yield* durationMs(schedule.every, "every")
      if (everyMs < 1000) return yield* new InvalidSchedule({ reason: "every must be at least 1 second" })
      clock = { _tag: "Every", everyMs, anchor: now }
    }
    const nextAt = Ticks.nextAfter(clock, now)
    if (nextAt === undefined)
      return yield* new InvalidSchedule({ reason: "the cron expression never matches" })
    return {
      name,
      queue,
      payload,
      priority,
      backfillMs,
      nextAt,
      cron: schedule.cron ?? null,
      timeZone: schedule.cron === undefined ? null : (schedule.timeZone ?? "UTC"),
      everyMs: clock._tag === "Every" ? clock.everyMs : null
    }
  })

/** The store boundary: database failures become `QueueStoreError { operation }`. */
const refail = (operation: string) =>
  Failure.refail((cause) => new QueueStoreError({ operation: `schedule:${operation}`, cause }))

/** Builds the service over the queue, `SqlClient` and `Backend` in context. */
export const make: Effect.Effect<Service, never, Queues | SqlClient.SqlClient | Backend.Backend> = Effect.gen(
  function* () {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const backend = yield* Backend.Backend
    const queues = yield* Queues
    const pg = backend.dialect === "pg"
    const skipLocked = sql.literal(pg ? "FOR UPDATE OF s SKIP LOCKED" : "")
    const inTransaction = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.provideService(Transaction.immediate(effect), Backend.Backend, backend)

    const select = sql`SELECT s.name, q.name AS queue, s.payload, s.priority, s.cron, s.time_zone, s.every_ms,
      s.backfill_ms, s.paused, s.next_at, s.last_tick_at, s.created_at
      FROM keel_schedules s JOIN keel_queue_queues q ON q.id = s.queue_id`

    const byName = (name: string) =>
      Effect.map(sql<Row>`${select} WHERE s.name = ${name}`, (rows) =>
        Option.map(Option.fromNullable(rows[0]), toInfo)
      )

    const create: Service["create"] = (schedule) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const valid = yield* validate(schedule, now)
        const created = yield* inTransaction(
          Effect.gen(function* () {
            const [queue] = yield* sql<{
              id: number | string
            }>`SELECT id FROM keel_queue_queues WHERE name = ${valid.queue}`
            if (queue === undefined) return yield* new QueueNotFound({ queue: valid.queue })
            const inserted = yield* sql<{ name: string }>`INSERT INTO keel_schedules ${sql.insert({
              name: valid.name,
              queue_id: Number(queue.id),
              payload: valid.payload,
              priority: valid.priority,
              cron: valid.cron,
              time_zone: valid.timeZone,
              every_ms: valid.everyMs,
              backfill_ms: valid.backfillMs,
              paused: 0,
              next_at: valid.nextAt,
              last_tick_at: null,
              created_at: now,
              updated_at: now
            })} ON CONFLICT (name) DO NOTHING RETURNING name`
            if (inserted.length === 0) return yield* new ScheduleAlreadyExists({ name: valid.name })
            return yield* byName(valid.name)
          })
        ).pipe(refail("create"))
        return yield* Option.match(created, {
          onNone: () => Effect.dieMessage("a created schedule was not found"),
          onSome: Effect.succeed
        })
      })

    const list: Service["list"] = (queue) =>
      Effect.map(
        queue === undefined
          ? sql<Row>`${select} ORDER BY s.name`
          : sql<Row>`${select} WHERE q.name = ${queue} ORDER BY s.name`,
        (rows) => rows.map(toInfo)
      ).pipe(refail("list"))

    const get: Service["get"] = (name) => byName(name).pipe(refail("get"))

    const setPaused = (name: string, paused: boolean) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const updated = yield* inTransaction(
          Effect.gen(function* () {
            const [row] = yield* sql<Row>`${select} WHERE s.name = ${name}`
            if (row === undefined) return yield* new ScheduleNotFound({ name })
            // Resuming skips what was missed while paused: the next tick after now.
            const clock = clockOf(row)
            const nextAt = paused ? Number(row.next_at) : ((clock && Ticks.nextAfter(clock, now)) ?? never)
            yield* sql`UPDATE keel_schedules SET paused = ${paused ? 1 : 0}, next_at = ${nextAt}, updated_at = ${now}
              WHERE name = ${name}`
            return yield* byName(name)
          })
        ).pipe(refail(paused ? "pause" : "resume"))
        return yield* Option.match(updated, {
          onNone: () => Effect.fail(new ScheduleNotFound({ name })),
          onSome: Effect.succeed
        })
      })

    const remove: Service["remove"] = (name) =>
      Effect.flatMap(
        sql<{ name: string }>`DELETE FROM keel_schedules WHERE name = ${name} RETURNING name`.pipe(
          refail("delete")
        ),
        (rows) => (rows.length === 0 ? Effect.fail(new ScheduleNotFound({ name })) : Effect.void)
      )

    const fireAt: Service["fireAt"] = (now) =>
      inTransaction(
        Effect.gen(function* () {
          const due = yield* sql<Row>`${select} WHERE s.paused = 0 AND s.next_at <= ${now}
            ORDER BY s.next_at LIMIT 100 ${skipLocked}`
          const ticks: Array<FiredTick> = []
          for (const row of due) {
            const clock = clockOf(row)
            const fired = clock === undefined ? [] : dueTicks(clock, row, now)
            const payload: unknown = JSON.parse(row.payload)
            for (const tick of fired) {
              const id = yield* queues.send(row.queue, payload, {
                priority: Number(row.priority),
                dedupKey: `keel:schedule:${row.name}:${tick}`
              })
              ticks.push({ schedule: row.name, tick, messageId: id })
            }
            const nextAt = (clock && Ticks.nextAfter(clock, now)) ?? never
            const lastTick = fired.at(-1)
            yield* sql`UPDATE keel_schedules SET next_at = ${nextAt}, updated_at = ${now},
              last_tick_at = ${lastTick === undefined ? (row.last_tick_at === null ? null : Number(row.last_tick_at)) : lastTick}
              WHERE name = ${row.name}`
          }
          const [next] = yield* sql<{ next_at: number | string | null }>`SELECT MIN(next_at) AS next_at
            FROM keel_schedules WHERE paused = 0`
          const nextAt =
            next?.next_at === null || next?.next_at === undefined ? undefined : Number(next.next_at)
          return { ticks, nextAt: nextAt === never ? undefined : nextAt }
        })
      ).pipe(refail("fire"))

    return {
      create,
      list,
      get,
      pause: (name) => setPaused(name, true),
      resume: (name) => setPaused(name, false),
      remove,
      fire: Effect.flatMap(Clock.currentTimeMillis, fireAt),
      fireAt
    }
  }
)

/** The service as a layer (runs the schedules' migration first); needs the queue. */
export const layer: Layer.Layer<
  Schedules,
  Migrations.MigrationError,
  Queues | SqlClient.SqlClient | Backend.Backend
> = Layer.effect(Schedules, Effect.zipRight(Migrations.run(migrations), make))

/**
 * The scheduler: fires due ticks until the scope closes, waking at the next due tick and at least
 * every `pollInterval` (default 1 s, so a schedule created by another process is noticed). A
 * failed firing is logged and tried again at the next wake-up; nothing is lost (ticks stay due).
 */
export const layerRunner = (
  options: { readonly pollInterval?: Duration.DurationInput | undefined } = {}
): Layer.Layer<never, never, Schedules> =>
  Layer.scopedDiscard(
    Effect.gen(function* () {
      const schedules = yield* Schedules
      const pollMs = Duration.toMillis(Duration.decode(options.pollInterval ?? Duration.seconds(1)))
      const step = Effect.gen(function* () {
        const fired = yield* Effect.either(schedules.fire)
        const now = yield* Clock.currentTimeMillis
        if (Either.isLeft(fired)) {
          yield* Effect.logWarning("firing schedules failed; trying again").pipe(
            Effect.annotateLogs({ error: fired.left.message })
          )
          return pollMs
        }
        const until = fired.right.nextAt === undefined ? pollMs : fired.right.nextAt - now
        return Math.max(5, Math.min(pollMs, until))
      })
      yield* Effect.forkScoped(
        Effect.forever(Effect.flatMap(step, (waitMs) => Effect.sleep(Duration.millis(waitMs))))
      )
    })
  )
