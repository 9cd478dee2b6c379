import { rmSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, layer } from "@effect/vitest"
import { Processes } from "@keel/testkit"
import { Duration, Effect } from "effect"
import { body, expectError, expectOk, list } from "./support/Expect.js"
import { directory, reservationOf } from "./support/Reservations.js"
import * as TestServer from "./support/TestServer.js"

/** A fresh project directory under the server's temp directory. */
const project = (server: TestServer.Running, name: string): string => directory(server, "projects", name)

/** A process reserving through the CLI's layers (`Keel.reservations` over `Keel.database`). */
const reserveChild = fileURLToPath(new URL("./support/ReserveChild.ts", import.meta.url))

for (const kind of TestServer.kinds) {
  describe(`HTTP reservations [${kind}]`, () => {
    layer(TestServer.layer(kind), { timeout: 120_000, excludeTestServices: true })((it) => {
      it.effect("reserve gives (path, tag) a port in the configured range and the same port again", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          const path = project(http.server, "same")
          const first = expectOk(yield* http.post("/reservations", { path, tag: "web", project: "same" }))
          expect(first.outcome).toBe("created")
          const port = Number(reservationOf(first).port)
          expect(port).toBeGreaterThanOrEqual(TestServer.reservationRange.min)
          expect(port).toBeLessThanOrEqual(TestServer.reservationRange.max)
          const again = expectOk(yield* http.post("/reservations", { path, tag: "web", cwd: path }))
          expect(again.outcome).toBe("refreshed")
          expect(reservationOf(again)).toMatchObject({ path, tag: "web", port, project: "same" })
          const other = expectOk(yield* http.post("/reservations", { path, tag: "api" }))
          expect(reservationOf(other).port).not.toBe(port)
        })
      )

      it.effect("a group gets distinct ports, listed, shown by key and by port, then released", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          const path = project(http.server, "group")
          const group = expectOk(
            yield* http.post("/reservations/group", { path, services: [{ tag: "web" }, { tag: "db" }] })
          )
          const ports = list(group, "reservations").map((entry) => Number(reservationOf(entry).port))
          expect(new Set(ports).size).toBe(2)
          const listed = list(
            expectOk(yield* http.get(`/reservations?pathPrefix=${encodeURIComponent(path)}`)),
            "reservations"
          )
          expect(listed.map((entry) => entry.tag)).toEqual(["db", "web"])
          const shown = expectOk(
            yield* http.get(`/reservations/show?path=${encodeURIComponent(path)}&tag=web`)
          )
          expect(shown).toMatchObject({ path, tag: "web", port: ports[0] })
          expect(expectOk(yield* http.get(`/reservations/ports/${ports[1]}`))).toMatchObject({ tag: "db" })
          const released = expectOk(yield* http.post("/reservations/release", { path, tag: "web" }))
          expect(list(released, "released").map((entry) => entry.tag)).toEqual(["web"])
          expect(released.dryRun).toBe(false)
          expectError(
            yield* http.get(`/reservations/show?path=${encodeURIComponent(path)}&tag=web`),
            404,
            "ReservationNotFound"
          )
          expectOk(yield* http.post("/reservations/release", { path }))
          expect(
            list(
              expectOk(yield* http.get(`/reservations?pathPrefix=${encodeURIComponent(path)}`)),
              "reservations"
            )
          ).toHaveLength(0)
        })
      )

      it.effect(
        "cleanup in a dry run reports a reservation whose directory is gone and removes nothing",
        () =>
          Effect.gen(function* () {
            const http = yield* TestServer.client
            const path = project(http.server, "gone")
            expectOk(yield* http.post("/reservations", { path, tag: "web" }))
            rmSync(path, { recursive: true })
            const report = expectOk(yield* http.post("/reservations/cleanup", { dryRun: true }))
            expect(report.dryRun).toBe(true)
            const removed = list(report, "removed")
            expect(removed.filter((entry) => reservationOf(entry).path === path)).toEqual([
              expect.objectContaining({ reason: "missing-path" })
            ])
            const shown = yield* http.get(`/reservations/show?path=${encodeURIComponent(path)}&tag=web`)
            expectOk(shown)
            const done = expectOk(yield* http.post("/reservations/cleanup", {}))
            expect(list(done, "removed").map((entry) => reservationOf(entry).path)).toContain(path)
            expectError(
              yield* http.get(`/reservations/show?path=${encodeURIComponent(path)}&tag=web`),
              404,
              "ReservationNotFound"
            )
          })
      )

      it.effect("bad input is 400 naming the field; nothing is reserved", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          const path = project(http.server, "bad")
          const relative = expectError(
            yield* http.post("/reservations", { path: "relative/dir" }),
            400,
            "InvalidPath"
          )
          expect(relative).toMatchObject({ field: "path", problem: "relative" })
          expectError(yield* http.post("/reservations", { path: join(path, "missing") }), 400, "InvalidPath")
          expectError(yield* http.post("/reservations", { path, preferred: 70_000 }), 400, "InvalidPort")
          expectError(
            yield* http.post("/reservations", { path, range: { min: 9000, max: 8000 } }),
            400,
            "InvalidRange"
          )
          expectError(yield* http.post("/reservations", { path, tag: "a\nb" }), 400, "InvalidTag")
          expectError(yield* http.post("/reservations", { path, project: "" }), 400, "InvalidLabel")
          expectError(yield* http.post("/reservations", { path, ttl: "soon" }), 400, "InvalidRequest")
          expectError(
            yield* http.post("/reservations", { path, cwd: project(http.server, "elsewhere") }),
            400,
            "UnrelatedPath"
          )
          expectError(yield* http.post("/reservations/cleanup", { unusedFor: -1 }), 400, "InvalidRequest")
          expectError(yield* http.get("/reservations/ports/0"), 400, "InvalidPort")
          expectError(yield* http.get("/reservations/ports/abc"), 400, "HttpApiDecodeError")
          expectError(yield* http.get("/reservations/ports/1"), 404, "ReservationNotFound")
          expectError(yield* http.post("/reservations", { tag: "web" }), 400, "HttpApiDecodeError")
          expect(
            list(
              expectOk(yield* http.get(`/reservations?pathPrefix=${encodeURIComponent(path)}`)),
              "reservations"
            )
          ).toHaveLength(0)
        })
      )

      it.effect(
        "a guessed project labels a new reservation only, and a different guess is no sticky change",
        () =>
          Effect.gen(function* () {
            const http = yield* TestServer.client
            const path = project(http.server, "guessed")
            const reserveWeb = (guess: { readonly project: string; readonly task: string }) =>
              Effect.map(http.post("/reservations", { path, tag: "web", guess }), expectOk)
            const created = yield* reserveWeb({ project: "shop", task: "main" })
            expect(created.outcome).toBe("created")
            expect(reservationOf(created)).toMatchObject({ project: "shop", task: "main" })
            const again = yield* reserveWeb({ project: "other", task: "dev" })
            expect(again.outcome).toBe("refreshed")
            expect(reservationOf(again)).toMatchObject({ project: "shop", task: "main" })
            const invalid = expectError(
              yield* http.post("/reservations", { path, tag: "api", guess: { project: "" } }),
              400,
              "InvalidLabel"
            )
            expect(invalid).toMatchObject({ field: "guess.project" })
          })
      )

      it.effect("conflicts are 409: no free port, a preferred port held by another key, a sticky label", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          const holder = project(http.server, "holder")
          const other = project(http.server, "other")
          const held = Number(
            reservationOf(expectOk(yield* http.post("/reservations", { path: holder }))).port
          )
          const full = expectError(
            yield* http.post("/reservations", { path: other, range: { min: held, max: held } }),
            409,
            "NoPortAvailable"
          )
          expect(full).toMatchObject({ path: other, requested: 1 })
          const taken = expectError(
            yield* http.post("/reservations", { path: other, preferred: held, force: true }),
            409,
            "PreferredPortReserved"
          )
          expect(taken).toMatchObject({ port: held, holderPath: holder })
          expectOk(yield* http.post("/reservations", { path: other, tag: "api", project: "one" }))
          const sticky = expectError(
            yield* http.post("/reservations", { path: other, tag: "api", project: "two" }),
            409,
            "StickyFieldChanged"
          )
          expect(sticky).toMatchObject({ field: "project", current: "one", requested: "two" })
          expect(body(yield* http.get(`/reservations/ports/${held}`))).toMatchObject({ path: holder })
        })
      )

      it.effect(
        "other processes on the server's database reserve while HTTP clients do, and no port is given twice",
        () =>
          Effect.gen(function* () {
            const http = yield* TestServer.client
            const path = project(http.server, "shared")
            const children = 3
            const perChild = 8
            const overHttp = 16
            // Bundled before the start time is chosen, so every child is up before it.
            yield* Effect.promise(() => Processes.runnable(reserveChild))
            const startAt = Processes.startAt(Duration.millis(1500))
            const env = {
              KEEL_DB: http.server.database.dsn,
              KEEL_RESERVATION_CONFIG: join(http.server.database.dir, "reservation.json"),
              XDG_DATA_HOME: http.server.database.dir,
              KEEL_TEST_PATH: path,
              KEEL_TEST_COUNT: String(perChild),
              KEEL_START_AT: startAt
            }
            const overHttpReplies = Effect.zipRight(
              Effect.suspend(() => Effect.sleep(Duration.millis(Math.max(0, Number(startAt) - Date.now())))),
              Effect.forEach(
                Array.from({ length: overHttp }, (_, index) => index),
                (index) => http.post("/reservations", { path, tag: `http-${index}` }),
                { concurrency: 4 }
              )
            )
            const [exits, replies] = yield* Effect.all(
              [Processes.runMany(children, () => ({ script: reserveChild, env })), overHttpReplies],
              { concurrency: 2 }
            )
            const childPorts = exits.flatMap((exited) => {
              expect({ code: exited.code, stderr: exited.stderr }).toEqual({ code: 0, stderr: "" })
              const ports: unknown = JSON.parse(exited.stdout)
              return Array.isArray(ports) ? ports.map(Number) : []
            })
            const httpPorts = replies.map((reply) => Number(reservationOf(expectOk(reply)).port))
            const all = [...childPorts, ...httpPorts]
            expect(all).toHaveLength(children * perChild + overHttp)
            expect(new Set(all).size).toBe(all.length)
            const listed = list(
              expectOk(yield* http.get(`/reservations?pathPrefix=${encodeURIComponent(path)}`)),
              "reservations"
            )
            expect(listed.map((entry) => Number(entry.port)).sort()).toEqual([...all].sort())
          }),
        60_000
      )
    })
  })
}
