/**
 * Test wiring for the reservation contract suite: the registry over a fresh database of each
 * backend, Node's filesystem, and an occupancy check that answers "occupied" for ports a test
 * marks and probes every other port for real.
 */
import { mkdirSync, rmSync } from "node:fs"
import { join } from "node:path"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as SqlClient from "@effect/sql/SqlClient"
import { Occupancy, Port, Reservation, type ReservationConfig } from "@keel/reservation"
import { Faults, TestDatabase } from "@keel/testkit"
import { Context, Duration, Effect, Layer, Ref } from "effect"

/** Marks ports as occupied for the fake part of the occupancy check. */
export interface MarkedPorts {
  readonly occupy: (port: number) => Effect.Effect<void>
  readonly free: (port: number) => Effect.Effect<void>
  /** Every port the registry asked about, in order. */
  readonly asked: Effect.Effect<ReadonlyArray<number>>
}

/** The marked-ports control of the current layer. */
export class Marked extends Context.Tag("test/Marked")<Marked, MarkedPorts>() {}

/** Occupancy: marked ports are occupied; every other port is probed with the real check. */
export const occupancyLayer: Layer.Layer<Occupancy.Occupancy | Marked> = Layer.effectContext(
  Effect.gen(function* () {
    const marked = yield* Ref.make<ReadonlySet<number>>(new Set())
    const asked = yield* Ref.make<ReadonlyArray<number>>([])
    const service: Occupancy.Service = {
      isOccupied: (port, probe) =>
        Effect.gen(function* () {
          yield* Ref.update(asked, (all) => [...all, port])
          return (yield* Ref.get(marked)).has(port) ? true : yield* Occupancy.probe(port, probe)
        })
    }
    const control: MarkedPorts = {
      occupy: (port) => Ref.update(marked, (set) => new Set([...set, port])),
      free: (port) => Ref.update(marked, (set) => new Set([...set].filter((p) => p !== port))),
      asked: Ref.get(asked)
    }
    return Context.make(Occupancy.Occupancy, service).pipe(Context.add(Marked, control))
  })
)

const port = (value: number) => Port.Port.make(value)

/** The suite's config: a default range of 10500–10519 whose first ten ports are excluded. */
export const testConfig: ReservationConfig.ReservationConfig = {
  range: Port.PortRange.make({ min: port(10500), max: port(10519) }),
  exclude: [Port.PortRange.make({ min: port(10500), max: port(10509) })],
  occupancy: { enabled: true, hosts: ["127.0.0.1", "::1"], timeout: Duration.millis(500) }
}

/** The registry, its database, the filesystem and the marked-ports control, for `kind`. */
export const layer = (kind: TestDatabase.Kind, config: ReservationConfig.ReservationConfig = testConfig) =>
  Reservation.layerWith(config).pipe(
    Layer.provideMerge(Layer.mergeAll(NodeFileSystem.layer, NodePath.layer, occupancyLayer)),
    Layer.provideMerge(TestDatabase.layer(kind))
  )

/** `layer` over a database whose statements faults can be injected into (`Faults.Faults`). */
export const faultyLayer = (
  kind: TestDatabase.Kind,
  config: ReservationConfig.ReservationConfig = testConfig
) =>
  Reservation.layerWith(config).pipe(
    Layer.provideMerge(Layer.mergeAll(NodeFileSystem.layer, NodePath.layer, occupancyLayer)),
    Layer.provideMerge(Layer.provideMerge(Faults.layer, TestDatabase.layer(kind)))
  )

/**
 * Hands out port ranges no other test of the file uses, from `start` up. Keep each test file in
 * its own region below the ephemeral range (32768+): outgoing connections of other programs never
 * make those ports look occupied, and two files probing at once never see each other's probe.
 */
export const rangesFrom = (start: number) => {
  let next = start
  return (size: number): { readonly min: number; readonly max: number } => {
    const min = next
    next += size + 5
    return { min, max: min + size - 1 }
  }
}

let nextDirectory = 0

/** A new, existing directory under the test database's temp dir. */
export const freshDirectory = (name: string): Effect.Effect<string, never, TestDatabase.TestDatabase> =>
  Effect.map(TestDatabase.TestDatabase, (info) => {
    nextDirectory += 1
    const dir = join(info.dir, "projects", `${name}-${nextDirectory}`)
    mkdirSync(dir, { recursive: true })
    return dir
  })

/** Creates `dir` (and parents). */
export const makeDirectory = (dir: string): Effect.Effect<void> =>
  Effect.sync(() => mkdirSync(dir, { recursive: true }))

/** Removes `dir` and everything in it. */
export const removeDirectory = (dir: string): Effect.Effect<void> =>
  Effect.sync(() => rmSync(dir, { recursive: true, force: true }))

/** Every stored row, in key order: equal snapshots mean nothing changed. */
export const snapshot = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  return yield* sql`SELECT path, tag, port, project, task, created_at, last_used_at, ttl_ms, expires_at
    FROM keel_reservations ORDER BY path, tag`
})

/** How many reservations hold a port inside `range`. */
export const countInRange = (range: { readonly min: number; readonly max: number }) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{
      n: number
    }>`SELECT COUNT(*) AS n FROM keel_reservations WHERE port BETWEEN ${range.min} AND ${range.max}`
    return Number(rows[0]?.n ?? 0)
  })
