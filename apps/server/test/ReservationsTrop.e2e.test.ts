/**
 * trop's registry commands over HTTP, on SQLite and PostgreSQL: migrate (ports kept, all or
 * nothing, 409 MigrationConflict with the key, dry runs and bad input change nothing), the
 * projects listing, and port info — with occupancy probed on the server's host only where the
 * server checks occupancy at all.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { expectError, expectOk, list } from "./support/Expect.js"
import * as Reservations from "./support/Reservations.js"
import * as TestServer from "./support/TestServer.js"

const { reservationOf } = Reservations

/** A fresh directory for one test. */
const directory = (server: TestServer.Running, name: string): string =>
  Reservations.directory(server, "trop", name)

type Client = Effect.Effect.Success<typeof TestServer.client>

/** `[path, tag, port]` of every reservation at or below `path`, by path then tag. */
const keysUnder = (http: Client, path: string) =>
  Effect.map(http.get(`/reservations?pathPrefix=${encodeURIComponent(path)}`), (reply) =>
    list(expectOk(reply), "reservations").map((entry) => [entry.path, entry.tag, entry.port])
  )

/** A TCP listener on 127.0.0.1 at a port the system picks, closed with the scope. */
const listening = Effect.acquireRelease(
  Effect.async<net.Server>((resume) => {
    const server = net.createServer()
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
  }),
  (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
)

const portOf = (server: net.Server): number => {
  const address = server.address()
  if (address === null || typeof address === "string") throw new Error("no port")
  return address.port
}

/** A reservation config with occupancy checking off (one registry for many machines). */
const configDir = mkdtempSync(join(tmpdir(), "keel-no-occupancy-"))
const noOccupancyConfig = join(configDir, "reservation.json")
writeFileSync(
  noOccupancyConfig,
  JSON.stringify({ range: TestServer.reservationRange, occupancy: { enabled: false } })
)
afterAll(() => rmSync(configDir, { recursive: true, force: true }))

for (const kind of TestServer.kinds) {
  describe(`HTTP reservations, trop commands [${kind}]`, () => {
    layer(TestServer.layer(kind), { timeout: 120_000, excludeTestServices: true })((it) => {
      it.effect(
        "migrate moves a path's reservations and those below it, keeping their ports; a dry run moves nothing",
        () =>
          Effect.gen(function* () {
            const http = yield* TestServer.client
            const from = directory(http.server, "from")
            const to = join(http.server.database.dir, "trop", "to")
            mkdirSync(join(from, "child"), { recursive: true })
            const web = reservationOf(expectOk(yield* http.post("/reservations", { path: from, tag: "web" })))
            const api = reservationOf(
              expectOk(yield* http.post("/reservations", { path: join(from, "child"), tag: "api" }))
            )
            const before = yield* keysUnder(http, from)
            const dry = expectOk(
              yield* http.post("/reservations/migrate", { from, to, recursive: true, dryRun: true })
            )
            expect(dry.dryRun).toBe(true)
            expect(list(dry, "moved").map((entry) => [entry.from, reservationOf(entry).path])).toEqual([
              [from, to],
              [join(from, "child"), join(to, "child")]
            ])
            expect(yield* keysUnder(http, from)).toEqual(before)
            expect(yield* keysUnder(http, to)).toEqual([])
            const done = expectOk(yield* http.post("/reservations/migrate", { from, to, recursive: true }))
            expect(done).toMatchObject({ dryRun: false, replaced: [] })
            expect(yield* keysUnder(http, to)).toEqual([
              [to, "web", web.port],
              [join(to, "child"), "api", api.port]
            ])
            expect(yield* keysUnder(http, from)).toEqual([])
          })
      )

      it.effect(
        "migrate onto a reserved key is 409 MigrationConflict naming it and moves nothing; overwrite replaces it",
        () =>
          Effect.gen(function* () {
            const http = yield* TestServer.client
            const from = directory(http.server, "conflict-from")
            const to = directory(http.server, "conflict-to")
            const moving = reservationOf(
              expectOk(yield* http.post("/reservations", { path: from, tag: "web" }))
            )
            expectOk(yield* http.post("/reservations", { path: from, tag: "db" }))
            const held = reservationOf(expectOk(yield* http.post("/reservations", { path: to, tag: "web" })))
            const before = [...(yield* keysUnder(http, from)), ...(yield* keysUnder(http, to))]
            const conflict = expectError(
              yield* http.post("/reservations/migrate", { from, to }),
              409,
              "MigrationConflict"
            )
            expect(conflict).toMatchObject({ path: to, tag: "web", port: held.port })
            expect([...(yield* keysUnder(http, from)), ...(yield* keysUnder(http, to))]).toEqual(before)
            const replaced = expectOk(
              yield* http.post("/reservations/migrate", { from, to, overwrite: true })
            )
            expect(list(replaced, "replaced").map((entry) => [entry.path, entry.tag, entry.port])).toEqual([
              [to, "web", held.port]
            ])
            expect(yield* keysUnder(http, to)).toContainEqual([to, "web", moving.port])
            expect(yield* keysUnder(http, from)).toEqual([])
          })
      )

      it.effect("bad migrate input is 400 naming the problem, and nothing is written", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          const from = directory(http.server, "bad-from")
          mkdirSync(join(from, "inner"))
          expectOk(yield* http.post("/reservations", { path: from, tag: "web" }))
          const before = yield* keysUnder(http, from)
          const relative = expectError(
            yield* http.post("/reservations/migrate", { from: "relative/dir", to: from }),
            400,
            "InvalidPath"
          )
          expect(relative).toMatchObject({ field: "from" })
          expectError(yield* http.post("/reservations/migrate", { from, to: from }), 400, "InvalidRequest")
          const inside = expectError(
            yield* http.post("/reservations/migrate", { from, to: join(from, "inner"), recursive: true }),
            400,
            "InvalidRequest"
          )
          expect(inside).toMatchObject({ field: "to" })
          expectError(yield* http.post("/reservations/migrate", { from }), 400, "HttpApiDecodeError")
          expectError(
            yield* http.post("/reservations/migrate", { from, to: "/elsewhere", dryRun: "yes" }),
            400,
            "HttpApiDecodeError"
          )
          expectError(yield* http.post("/reservations/migrate", "{not json"), 400, "InvalidJson")
          expect(yield* keysUnder(http, from)).toEqual(before)
          expect(yield* keysUnder(http, "/elsewhere")).toEqual([])
        })
      )

      it.effect(
        "projects lists each project once with its count, sorted, reservations without one as null",
        () =>
          Effect.gen(function* () {
            const http = yield* TestServer.client
            for (const [name, project] of [
              ["p1", "zeta-shop"],
              ["p2", "zeta-shop"],
              ["p3", "alpha-infra"],
              ["p4", undefined]
            ] as const) {
              const path = directory(http.server, `projects-${name}`)
              expectOk(yield* http.post("/reservations", { path, tag: "web", project }))
            }
            const projects = list(expectOk(yield* http.get("/reservations/projects")), "projects")
            const names = projects.map((entry) => entry.project)
            expect(new Set(names).size).toBe(names.length)
            expect(names[0]).toBe(null)
            expect(names.slice(1)).toEqual([...names.slice(1)].sort())
            expect(projects).toContainEqual({ project: "zeta-shop", reservations: 2 })
            expect(projects).toContainEqual({ project: "alpha-infra", reservations: 1 })
            const total = list(expectOk(yield* http.get("/reservations")), "reservations").length
            expect(projects.reduce((sum, entry) => sum + Number(entry.reservations), 0)).toBe(total)
          })
      )

      it.scoped("port info: the holder or null, and occupancy on the server's host when asked", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          const path = directory(http.server, "info")
          const reserved = reservationOf(expectOk(yield* http.post("/reservations", { path, tag: "web" })))
          const info = expectOk(yield* http.get(`/reservations/ports/${reserved.port}/info`))
          expect(info).toMatchObject({ port: reserved.port, occupied: null })
          expect(reservationOf(info)).toMatchObject({ path, tag: "web" })
          const listener = yield* listening
          const busy = portOf(listener)
          expect(expectOk(yield* http.get(`/reservations/ports/${busy}/info?occupancy=true`))).toEqual({
            port: busy,
            reservation: null,
            occupied: true
          })
          expect(expectOk(yield* http.get(`/reservations/ports/${busy}/info`))).toEqual({
            port: busy,
            reservation: null,
            occupied: null
          })
          expectError(yield* http.get("/reservations/ports/0/info"), 400, "InvalidPort")
          expectError(yield* http.get("/reservations/ports/70000/info"), 400, "InvalidPort")
          expectError(yield* http.get("/reservations/ports/abc/info"), 400, "HttpApiDecodeError")
          expectError(
            yield* http.get(`/reservations/ports/${busy}/info?occupancy=maybe`),
            400,
            "HttpApiDecodeError"
          )
        })
      )

      it.effect("/openapi.json documents the new routes with their typed errors", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          const document = expectOk(yield* http.get("/openapi.json"))
          const paths = document.paths as Record<string, Record<string, Record<string, unknown>>>
          const migrate = paths["/reservations/migrate"]?.post?.responses as Record<string, unknown>
          expect(JSON.stringify(migrate["409"])).toContain("MigrationConflict")
          expect(JSON.stringify(migrate["400"])).toContain("InvalidPath")
          expect(paths["/reservations/projects"]?.get).toBeDefined()
          const info = paths["/reservations/ports/{port}/info"]?.get?.responses as Record<string, unknown>
          expect(JSON.stringify(info["400"])).toContain("InvalidPort")
        })
      )
    })

    layer(TestServer.layer(kind, { KEEL_RESERVATION_CONFIG: noOccupancyConfig }), {
      timeout: 120_000,
      excludeTestServices: true
    })((it) => {
      it.scoped("a server that does not check occupancy answers occupied: null even when asked", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          const busy = portOf(yield* listening)
          expect(expectOk(yield* http.get(`/reservations/ports/${busy}/info?occupancy=true`))).toEqual({
            port: busy,
            reservation: null,
            occupied: null
          })
        })
      )
    })
  })
}
