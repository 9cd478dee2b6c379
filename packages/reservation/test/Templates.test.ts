/**
 * On better-sqlite3 the common reservation — a new one, a refresh, the release of one key — builds
 * no SQL while it runs: its statements are templates of their values (`Plan.each`), compiled once
 * per store and bound per run, so the write lock is held for the statements alone (with ten
 * processes reserving at once, building and compiling SQL text under the lock was most of the time
 * it was held). Counted through a SqlClient that counts every statement built with its template.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as SqlClient from "@effect/sql/SqlClient"
import { expect, layer } from "@effect/vitest"
import { Reservation } from "@keel/reservation"
import { TestDatabase } from "@keel/testkit"
import { Effect, Layer } from "effect"
import { freshDirectory, occupancyLayer, testConfig } from "./support/ReservationTest.js"

let built = 0

/** The database's SqlClient, counting every call of its `sql` template. */
const counting = Layer.effect(
  SqlClient.SqlClient,
  Effect.map(
    SqlClient.SqlClient,
    (sql): SqlClient.SqlClient =>
      new Proxy(sql, {
        apply: (target, self, args) => {
          built++
          return Reflect.apply(target, self, args)
        }
      })
  )
)

const registry = Reservation.layerWith(testConfig).pipe(
  Layer.provideMerge(Layer.mergeAll(NodeFileSystem.layer, NodePath.layer, occupancyLayer)),
  Layer.provideMerge(counting),
  Layer.provideMerge(TestDatabase.layer("sqlite"))
)

const range = { min: 16_800, max: 16_819 }
const occupancy = { enabled: false }

layer(registry, { timeout: 180_000, excludeTestServices: true })((it) => {
  it.effect("a new reservation, a refresh and a release build no statement once the store has run them", () =>
    Effect.gen(function* () {
      const reservations = yield* Reservation.Reservations
      const round = Effect.fn(function* (name: string) {
        const dir = yield* freshDirectory(name)
        const created = yield* reservations.reserve({ path: dir, cwd: dir, tag: "web", range, occupancy })
        const refreshed = yield* reservations.reserve({ path: dir, cwd: dir, tag: "web", range, occupancy })
        expect(created.outcome).toBe("created")
        expect(refreshed).toMatchObject({
          outcome: "refreshed",
          reservation: { port: created.reservation.port }
        })
        const released = yield* reservations.release({ path: dir, cwd: dir, tag: "web" })
        expect(released.released.map((reservation) => reservation.port)).toEqual([created.reservation.port])
      })
      built = 0
      yield* round("first")
      // The first round compiles the templates (and the proxy is the store's client).
      expect(built).toBeGreaterThan(0)
      built = 0
      yield* round("second")
      yield* round("third")
      expect(built).toBe(0)
    })
  )
})
