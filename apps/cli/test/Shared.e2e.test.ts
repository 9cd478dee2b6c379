/**
 * The CLI and the server on one SQLite file: `keel port reserve` processes and HTTP reserve
 * requests to a running server (apps/server, a child process) race for ports, and every
 * reservation gets its own port — SQLite's file lock and `BEGIN IMMEDIATE` serialize the two
 * processes' transactions.
 */
import { mkdirSync } from "node:fs"
import { join } from "node:path"
import { Effect, Exit, Scope } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as TestServer from "../../server/test/support/TestServer.js"
import * as Keel from "./support/Keel.js"

const reservationsOf = (
  value: unknown
): ReadonlyArray<{ readonly path: unknown; readonly port: unknown }> => {
  if (typeof value !== "object" || value === null || !("reservations" in value)) {
    throw new Error(`expected { reservations }: ${JSON.stringify(value)}`)
  }
  const { reservations } = value
  if (!Array.isArray(reservations)) throw new Error(`expected an array: ${JSON.stringify(value)}`)
  return reservations.map((reservation: unknown) => {
    if (typeof reservation !== "object" || reservation === null) throw new Error("expected an object")
    return {
      path: "path" in reservation ? reservation.path : undefined,
      port: "port" in reservation ? reservation.port : undefined
    }
  })
}

/** The port of a `POST /reservations` reply, `{ reservation: { port }, outcome }`. */
const portOf = (value: unknown): number => {
  const reservation =
    typeof value === "object" && value !== null && "reservation" in value ? value.reservation : undefined
  if (
    typeof reservation !== "object" ||
    reservation === null ||
    !("port" in reservation) ||
    typeof reservation.port !== "number"
  ) {
    throw new Error(`expected { reservation: { port } }: ${JSON.stringify(value)}`)
  }
  return reservation.port
}

describe("the CLI and the server on one SQLite file", () => {
  const scope = Effect.runSync(Scope.make())
  let database: Awaited<ReturnType<typeof Keel.freshDatabase>>
  let server: TestServer.Running

  beforeAll(async () => {
    const [, fresh] = await Promise.all([Keel.ensureBuilt(), Keel.freshDatabase("sqlite")])
    database = fresh
    server = await Effect.runPromise(Scope.extend(TestServer.start(database), scope))
  })

  afterAll(async () => {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    await database?.close()
  })

  it("10 CLI reserves and 10 HTTP reserves at once never share a port; the database holds exactly those 20", async () => {
    const count = 10
    const dirs = (who: string) =>
      Array.from({ length: count }, (_, index) => {
        const path = join(database.dir, `${who}-${index}`)
        mkdirSync(path)
        return path
      })
    const cliPaths = dirs("cli")
    const httpPaths = dirs("http")
    const env = {
      KEEL_DB: database.dsn,
      KEEL_RESERVATION_CONFIG: join(database.dir, "reservation.json"),
      XDG_DATA_HOME: database.dir
    }
    const cliRuns = cliPaths.map((path) =>
      Keel.keel(["port", "reserve", "--tag", "web", "--no-occupancy-check"], { cwd: path, env }).then(
        (result) => ({ result, at: Date.now() })
      )
    )
    // The CLI processes take a while to boot on a small machine: the HTTP requests go out at once
    // when the first CLI process is done, while the other nine are reserving.
    await Promise.race(cliRuns)
    const httpStarted = Date.now()
    const httpPorts = await Promise.all(
      httpPaths.map(async (path) => {
        const reply = await Effect.runPromise(
          TestServer.request(server, "POST", "/reservations", {
            body: { path, tag: "web", occupancy: { enabled: false } }
          })
        )
        expect(reply.status, reply.text).toBe(200)
        return portOf(reply.json)
      })
    )
    const cliResults = await Promise.all(cliRuns)
    expect(cliResults.filter((run) => run.at >= httpStarted).length).toBeGreaterThan(0)
    const cliPorts = cliResults.map(({ result }) => {
      expect(result, result.stderr).toMatchObject({ code: 0, stderr: "" })
      expect(result.stdout).toMatch(/^\d+\n$/)
      return Number(result.stdout)
    })
    const all = [...cliPorts, ...httpPorts]
    expect(new Set(all).size).toBe(2 * count)
    for (const port of all) {
      expect(port).toBeGreaterThanOrEqual(TestServer.reservationRange.min)
      expect(port).toBeLessThanOrEqual(TestServer.reservationRange.max)
    }

    const expected = [...cliPaths, ...httpPaths].map((path, index) => ({ path, port: all[index] }))
    const byPath = (a: { path: unknown }, b: { path: unknown }) =>
      String(a.path).localeCompare(String(b.path))
    const listed = Keel.json(await Keel.keel(["port", "list", "--json"], { env }))
    expect([...reservationsOf(listed)].sort(byPath)).toEqual([...expected].sort(byPath))
    const served = await Effect.runPromise(TestServer.request(server, "GET", "/reservations"))
    expect([...reservationsOf(served.json)].sort(byPath)).toEqual([...expected].sort(byPath))
  })
})
