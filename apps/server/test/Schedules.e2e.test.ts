import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { expectError, expectOk, list } from "./support/Expect.js"
import * as TestServer from "./support/TestServer.js"

for (const kind of TestServer.kinds) {
  describe(`HTTP schedules [${kind}]`, () => {
    layer(TestServer.layer(kind), { timeout: 120_000, excludeTestServices: true })((it) => {
      it.effect("a schedule created over HTTP fires in the server's scheduler; pause, resume, delete", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          expectOk(yield* http.post("/queues", { name: "ticks" }), 201)
          const created = expectOk(
            yield* http.post("/schedules", {
              name: "every-second",
              queue: "ticks",
              everyMs: 1000,
              payload: { job: "tick" }
            }),
            201
          )
          expect(created).toMatchObject({
            name: "every-second",
            queue: "ticks",
            everyMs: 1000,
            paused: false
          })
          // The scheduler runs on the server's real clock: wait for it there.
          yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 2600)))
          const read = list(expectOk(yield* http.post("/queues/ticks/read", { qty: 10 })), "messages")
          expect(read.length).toBeGreaterThanOrEqual(1)
          expect(read.map((message) => message.payload)).toEqual(read.map(() => ({ job: "tick" })))
          expect(expectOk(yield* http.post("/schedules/every-second/pause"))).toMatchObject({ paused: true })
          expect(list(expectOk(yield* http.get("/schedules?queue=ticks")), "schedules")).toHaveLength(1)
          expect(expectOk(yield* http.post("/schedules/every-second/resume"))).toMatchObject({
            paused: false
          })
          expect((yield* http.del("/schedules/every-second")).status).toBe(204)
          expectError(yield* http.get("/schedules/every-second"), 404, "ScheduleNotFound")
        })
      )

      it.effect("bad definitions are typed 4xx and create nothing", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          expectOk(yield* http.post("/queues", { name: "bad-ticks" }), 201)
          expectError(
            yield* http.post("/schedules", { name: "x", queue: "bad-ticks" }),
            400,
            "InvalidSchedule"
          )
          expectError(
            yield* http.post("/schedules", { name: "x", queue: "bad-ticks", cron: "not a cron" }),
            400,
            "InvalidSchedule"
          )
          expectError(
            yield* http.post("/schedules", { name: "x", queue: "bad-ticks", everyMs: -1 }),
            400,
            "InvalidSchedule"
          )
          expectError(
            yield* http.post("/schedules", { name: "x", queue: "nope", everyMs: 60_000 }),
            404,
            "QueueNotFound"
          )
          expectOk(
            yield* http.post("/schedules", {
              name: "x",
              queue: "bad-ticks",
              cron: "0 * * * *",
              timeZone: "Europe/Paris"
            }),
            201
          )
          expectError(
            yield* http.post("/schedules", { name: "x", queue: "bad-ticks", everyMs: 60_000 }),
            409,
            "ScheduleAlreadyExists"
          )
          expect(list(expectOk(yield* http.get("/schedules?queue=bad-ticks")), "schedules")).toHaveLength(1)
        })
      )
    })
  })
}
