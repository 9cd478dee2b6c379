/**
 * The registry's read-only views: projects counted once each (sorted, no project first) and port
 * info (the holder or null; occupancy only when asked, probed in the server suite), on SQLite.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it, layer } from "@effect/vitest"
import { Inventory, Reservation, Schemas } from "@keel/reservation"
import { Effect, FastCheck, Schema } from "effect"
import { layer as registryLayer } from "./support/ReservationTest.js"

const decode = Schema.decodeUnknownSync(Schemas.Reservation)

const reservation = (index: number, project: string | null) =>
  decode({
    path: `/srv/p${index}`,
    tag: null,
    port: 20_000 + index,
    project,
    task: null,
    createdAt: "2026-12-07T00:00:00.000Z",
    lastUsedAt: "2026-12-07T00:00:00.000Z",
    expiresAt: null
  })

describe("Inventory.projectsOf", () => {
  it("counts each project once, sorted, the reservations without one first as null", () => {
    const projects = Inventory.projectsOf(
      [null, "b", "a", "b", null, "c"].map((project, index) => reservation(index, project))
    )
    expect(projects.projects).toEqual([
      { project: null, reservations: 2 },
      { project: "a", reservations: 1 },
      { project: "b", reservations: 2 },
      { project: "c", reservations: 1 }
    ])
    expect(Inventory.projectsOf([])).toEqual({ projects: [] })
  })

  it("for any reservations: distinct projects, counts summing to the total, in order", () => {
    FastCheck.assert(
      FastCheck.property(
        FastCheck.array(FastCheck.option(FastCheck.constantFrom("x", "y", "z", "é", "Z"), { nil: null })),
        (labels) => {
          const { projects } = Inventory.projectsOf(labels.map((label, index) => reservation(index, label)))
          const names = projects.map((entry) => entry.project)
          const named = names.filter((name) => name !== null)
          return (
            new Set(names).size === names.length &&
            projects.reduce((sum, entry) => sum + entry.reservations, 0) === labels.length &&
            named.every((name, index) => index === 0 || (named[index - 1] ?? "") < name) &&
            names.indexOf(null) <= 0
          )
        }
      )
    )
  })
})

const dir = mkdtempSync(join(tmpdir(), "keel-inventory-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

layer(registryLayer("sqlite"), { timeout: 60_000, excludeTestServices: true })(
  "Inventory over a registry",
  (it) => {
    it.effect("projects and port info read what the registry holds; a bad port is InvalidPort", () =>
      Effect.gen(function* () {
        const registry = yield* Reservation.Reservations
        const range = { min: 31_000, max: 31_009 }
        const held = yield* registry.reserve({ path: dir, cwd: dir, tag: "web", project: "inv", range })
        expect((yield* Inventory.projects(registry)).projects).toContainEqual({
          project: "inv",
          reservations: 1
        })
        const info = yield* Inventory.portInfo(registry, held.reservation.port, { occupancy: false })
        expect(info).toEqual({ port: held.reservation.port, reservation: held.reservation, occupied: null })
        const free = yield* Inventory.portInfo(registry, 31_009, { occupancy: false })
        expect(free).toEqual({ port: 31_009, reservation: null, occupied: null })
        const error = yield* Effect.flip(Inventory.portInfo(registry, 0, { occupancy: false }))
        expect(error._tag).toBe("InvalidPort")
      })
    )
  }
)
