/**
 * `keel schedule …` on each backend: create (cron or interval), list, pause, resume, delete, and
 * `schedule run` — two schedulers at once — enqueueing each tick once.
 */
import { afterAll, beforeAll, expect, it } from "vitest"
import * as Keel from "./support/Keel.js"

for (const kind of Keel.kinds) {
  Keel.describeBackend(`keel schedule [${kind}]`, () => {
    let database: Awaited<ReturnType<typeof Keel.freshDatabase>>
    let env: Record<string, string>
    const keel = (args: ReadonlyArray<string>) => Keel.keel(args, { env })

    beforeAll(async () => {
      await Keel.ensureBuilt()
      database = await Keel.freshDatabase(kind)
      env = { KEEL_DB: database.dsn, XDG_DATA_HOME: database.dir }
    })
    afterAll(() => database.close())

    it("create, list, pause, resume, delete; bad definitions are exit 2, unknown names exit 1", async () => {
      Keel.ok(await keel(["queue", "create", "reports"]))
      const created = Keel.json(
        await keel([
          "schedule",
          "create",
          "nightly",
          "reports",
          "--cron",
          "0 30 2 * * *",
          "--time-zone",
          "Europe/Paris",
          "--payload",
          '{"report":"daily"}',
          "--json"
        ])
      )
      expect(created.schedule).toMatchObject({
        name: "nightly",
        cron: "0 30 2 * * *",
        timeZone: "Europe/Paris"
      })
      expect(Keel.ok(await keel(["schedule", "list"]))).toContain("nightly")
      expect(Keel.json(await keel(["schedule", "pause", "nightly", "--json"])).schedule).toMatchObject({
        paused: true
      })
      expect(Keel.ok(await keel(["schedule", "resume", "nightly"]))).toContain("resumed")
      Keel.ok(await keel(["schedule", "delete", "nightly"]))
      expect(Keel.failure(await keel(["schedule", "delete", "nightly"]), 1)).toMatch(
        /schedule "nightly" does not exist/
      )
      expect(Keel.failure(await keel(["schedule", "create", "x", "reports", "--cron", "nope"]), 2)).toMatch(
        /invalid schedule: cron/
      )
      expect(Keel.failure(await keel(["schedule", "create", "x", "reports"]), 2)).toMatch(
        /give either cron or every/
      )
      expect(Keel.failure(await keel(["schedule", "create", "x", "nope", "--every", "1m"]), 1)).toMatch(
        /queue "nope" does not exist/
      )
      expect(Keel.json(await keel(["schedule", "list", "--json"])).schedules).toEqual([])
    })

    it("two `schedule run` processes enqueue each tick of an every-second schedule exactly once", async () => {
      Keel.ok(await keel(["queue", "create", "ticks"]))
      Keel.ok(await keel(["schedule", "create", "second", "ticks", "--every", "1s", "--payload", '"tick"']))
      const runners = [0, 1].map(() => Keel.start(["schedule", "run", "--poll-interval", "100ms"], { env }))
      await new Promise((resolve) => setTimeout(resolve, 4_500))
      for (const runner of runners) runner.child.kill("SIGTERM")
      for (const runner of runners) expect((await runner.exited).code).toBe(0)
      const read = Keel.json(await keel(["queue", "read", "ticks", "-n", "100", "--json"]))
      const messages = Array.isArray(read.messages) ? read.messages : []
      expect(messages.length).toBeGreaterThanOrEqual(2)
      expect(messages.length).toBeLessThanOrEqual(5)
      expect(messages.every((message) => (message as { payload: unknown }).payload === "tick")).toBe(true)
    })
  })
}
