import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, layer } from "@effect/vitest"
import { Queue, Schedule } from "@keel/queue"
import { Processes, TestDatabase } from "@keel/testkit"
import { type Duration, Effect, Layer, Option } from "effect"
import { fixture, layer as queueLayer, uniqueName } from "./support/QueueTest.js"

const t0 = Date.UTC(2026, 0, 5, 12, 0, 0) // a Monday, 12:00:00 UTC

/** Every message of `queue` (payload, priority, dedup key), oldest first. */
const messagesOf = (queue: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ payload: string; priority: number; dedup_key: string | null }>`
      SELECT m.payload, m.priority, k.dedup_key FROM keel_queue_messages m
      JOIN keel_queue_queues q ON q.id = m.queue_id
      LEFT JOIN keel_queue_dedup_keys k ON k.queue_id = m.queue_id AND k.message_id = m.id
      WHERE q.name = ${queue} ORDER BY m.id`
    return rows.map((row) => ({
      payload: JSON.parse(row.payload),
      priority: Number(row.priority),
      key: row.dedup_key
    }))
  })

/** The ticks a firing enqueued for the schedules named (other tests' schedules share the database). */
const ticksOf = (fired: Schedule.Fired, name: string) =>
  fired.ticks.filter((tick) => tick.schedule === name).map((tick) => tick.tick)

TestDatabase.describeEach("Schedules", (kind) => {
  const schedules = Schedule.layer.pipe(Layer.provideMerge(queueLayer(kind)))
  layer(schedules, { timeout: 120_000, excludeTestServices: true })((it) => {
    const setup = (every: Duration.DurationInput | undefined, options: Partial<Schedule.NewSchedule> = {}) =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const service = yield* Schedule.Schedules
        const queue = uniqueName("sched")
        yield* queues.createQueue(queue)
        const name = uniqueName("tick")
        const created = yield* service.create({ name, queue, payload: { job: name }, every, ...options })
        return { queue, name, created, service }
      })

    it.effect("an interval schedule fires each tick once, with its payload, priority and a tick key", () =>
      Effect.gen(function* () {
        const { queue, name, created, service } = yield* setup("2 seconds", { priority: 5 })
        expect(created).toMatchObject({ name, queue, everyMs: 2000, cron: null, paused: false, priority: 5 })
        const start = created.createdAt
        expect(created.nextAt).toBe(start + 2000)
        expect(ticksOf(yield* service.fireAt(start + 1999), name)).toEqual([])
        expect(ticksOf(yield* service.fireAt(start + 2000), name)).toEqual([start + 2000])
        // Firing again at the same instant, or a little later, enqueues nothing more.
        expect(ticksOf(yield* service.fireAt(start + 2000), name)).toEqual([])
        expect(ticksOf(yield* service.fireAt(start + 3999), name)).toEqual([])
        expect(ticksOf(yield* service.fireAt(start + 4001), name)).toEqual([start + 4000])
        const messages = yield* messagesOf(queue)
        expect(messages).toEqual([
          { payload: { job: name }, priority: 5, key: `keel:schedule:${name}:${start + 2000}` },
          { payload: { job: name }, priority: 5, key: `keel:schedule:${name}:${start + 4000}` }
        ])
        const stored = yield* service.get(name)
        expect(Option.getOrThrow(stored)).toMatchObject({ lastTickAt: start + 4000, nextAt: start + 6000 })
      })
    )

    it.effect(
      "missed ticks: without backfill only the latest (if under a minute old); with backfill every tick in the window",
      () =>
        Effect.gen(function* () {
          const plain = yield* setup("1 second")
          const s = plain.created.createdAt
          // Down for 10 s: one tick, the latest.
          expect(ticksOf(yield* plain.service.fireAt(s + 10_500), plain.name)).toEqual([s + 10_000])
          // Down for 2 minutes: still only the latest tick, not the 119 before it.
          expect(ticksOf(yield* plain.service.fireAt(s + 130_500), plain.name)).toEqual([s + 130_000])
          const filled = yield* setup("1 second", { backfill: "5 seconds" })
          const b = filled.created.createdAt
          expect(ticksOf(yield* filled.service.fireAt(b + 10_500), filled.name)).toEqual([
            b + 6_000,
            b + 7_000,
            b + 8_000,
            b + 9_000,
            b + 10_000
          ])
          expect((yield* messagesOf(filled.queue)).length).toBe(5)
        })
    )

    it.effect("a cron schedule with seconds and a time zone fires at its local times", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const service = yield* Schedule.Schedules
        const queue = uniqueName("cron")
        yield* queues.createQueue(queue)
        const name = uniqueName("paris")
        const created = yield* service.create({ name, queue, cron: "30 0 9 * * *", timeZone: "Europe/Paris" })
        expect(created).toMatchObject({ cron: "30 0 9 * * *", timeZone: "Europe/Paris", everyMs: null })
        // 09:00:30 in Paris in winter is 08:00:30 UTC.
        const sql = yield* SqlClient.SqlClient
        yield* sql`UPDATE keel_schedules SET next_at = ${t0} WHERE name = ${name}`
        const at = Date.UTC(2026, 0, 6, 8, 0, 30)
        expect(ticksOf(yield* service.fireAt(at - 1), name)).toEqual([])
        expect(ticksOf(yield* service.fireAt(at + 200), name)).toEqual([at])
        expect(Option.getOrThrow(yield* service.get(name)).nextAt).toBe(Date.UTC(2026, 0, 7, 8, 0, 30))
      })
    )

    it.effect(
      "pause skips ticks; resume continues from the next tick after now, without backfilling the pause",
      () =>
        Effect.gen(function* () {
          const { queue, name, created, service } = yield* setup("1 second", { backfill: "1 hour" })
          const s = created.createdAt
          expect((yield* service.pause(name)).paused).toBe(true)
          expect(ticksOf(yield* service.fireAt(s + 5_000), name)).toEqual([])
          const resumed = yield* service.resume(name)
          expect(resumed.paused).toBe(false)
          expect(resumed.nextAt).toBeGreaterThan(Date.now() - 1000)
          expect((yield* messagesOf(queue)).length).toBe(0)
        })
    )

    it.effect("list, get, remove; deleting the queue deletes its schedules", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const { queue, name, service } = yield* setup("1 minute")
        expect((yield* service.list(queue)).map((schedule) => schedule.name)).toEqual([name])
        yield* service.remove(name)
        expect(Option.isNone(yield* service.get(name))).toBe(true)
        expect((yield* Effect.flip(service.remove(name)))._tag).toBe("ScheduleNotFound")
        const other = yield* setup("1 minute")
        yield* queues.deleteQueue(other.queue, { force: true })
        expect(Option.isNone(yield* service.get(other.name))).toBe(true)
      })
    )

    it.effect("bad definitions fail typed and write nothing", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const service = yield* Schedule.Schedules
        const queue = uniqueName("bad")
        yield* queues.createQueue(queue)
        const cases: ReadonlyArray<readonly [Schedule.NewSchedule, string]> = [
          [{ name: "x", queue }, "InvalidSchedule"],
          [{ name: "x", queue, cron: "* * * * *", every: "1 minute" }, "InvalidSchedule"],
          [{ name: "x", queue, cron: "not a cron" }, "InvalidSchedule"],
          [{ name: "x", queue, cron: "0 0 30 2 *" }, "InvalidSchedule"],
          [{ name: "x", queue, cron: "* * * * *", timeZone: "Mars/Olympus" }, "InvalidSchedule"],
          [{ name: "x", queue, every: "10 millis" }, "InvalidSchedule"],
          [{ name: "x", queue, every: -5_000 }, "InvalidSchedule"],
          [{ name: "x", queue, every: Number.NaN }, "InvalidSchedule"],
          [{ name: "x", queue, every: "1 minute", backfill: -1 }, "InvalidSchedule"],
          [{ name: "x", queue, every: "1 minute", timeZone: "UTC" }, "InvalidSchedule"],
          [{ name: "x", queue, every: "1 minute", priority: 1.5 }, "InvalidSchedule"],
          [{ name: "Bad Name", queue, every: "1 minute" }, "InvalidSchedule"],
          [{ name: "x", queue: "no-such-queue", every: "1 minute" }, "QueueNotFound"]
        ]
        for (const [definition, tag] of cases) {
          expect((yield* Effect.flip(service.create(definition)))._tag, JSON.stringify(definition)).toBe(tag)
        }
        expect(yield* service.list(queue)).toEqual([])
        const { name } = yield* setup("1 minute")
        const again = yield* Effect.flip(service.create({ name, queue, every: "1 minute" }))
        expect(again._tag).toBe("ScheduleAlreadyExists")
      })
    )
  })
})

describe("Schedules across processes", () => {
  for (const kind of TestDatabase.kinds.filter((kind) => kind === "sqlite" || kind === "postgres")) {
    layer(Schedule.layer.pipe(Layer.provideMerge(queueLayer(kind))), {
      timeout: 120_000,
      excludeTestServices: true
    })((it) => {
      it.effect(`[${kind}] 4 schedulers racing enqueue each tick exactly once`, () =>
        Effect.gen(function* () {
          const queues = yield* Queue.Queues
          const service = yield* Schedule.Schedules
          const info = yield* TestDatabase.TestDatabase
          const queue = uniqueName("race")
          yield* queues.createQueue(queue)
          const name = uniqueName("race")
          const created = yield* service.create({ name, queue, every: "1 second" })
          const exits = yield* Processes.runMany(4, () => ({
            script: fixture("scheduler"),
            args: [info.dsn, "4500"]
          }))
          for (const exited of exits) expect(exited.code, exited.stdout + exited.stderr).toBe(0)
          const keys = (yield* messagesOf(queue)).map((message) => message.key)
          const ticks = keys.map((key) => Number(key?.split(":").at(-1)))
          expect(new Set(keys).size).toBe(keys.length)
          expect(ticks.length).toBeGreaterThanOrEqual(3)
          // Consecutive ticks one second apart, on the schedule's grid (the first may have passed
          // while the schedulers booted: without backfill only the latest missed tick fires).
          const first = ticks[0] ?? 0
          expect((first - created.nextAt) % 1000).toBe(0)
          expect(ticks).toEqual(ticks.map((_, index) => first + index * 1000))
        })
      )
    })
  }
})
