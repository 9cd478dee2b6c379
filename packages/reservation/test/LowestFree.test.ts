/**
 * The lowest free port, on random registries: each port of a small range held by a live
 * reservation, by an expired one, or by none (drawn from a seed; `KEEL_FAULT_SEED` replays). A new
 * reservation must get the lowest port no live reservation holds — the same answer from the
 * general query and from PostgreSQL's `keel_reservation_lowest_free` (used when the request holds
 * nothing and avoids no span), and `NoPortAvailable` when every port is live.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { expect, layer } from "@effect/vitest"
import { Reservation } from "@keel/reservation"
import { Seed, TestDatabase } from "@keel/testkit"
import { Effect, Either } from "effect"
import { freshDirectory, layer as registryLayer } from "./support/ReservationTest.js"

const rounds = 30
const range = { min: 16_700, max: 16_719 }

TestDatabase.describeEach("Lowest free port", (kind) => {
  layer(registryLayer(kind), { timeout: 180_000, excludeTestServices: true })((it) => {
    it.effect("a new reservation gets the lowest port no live reservation holds, round after round", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const registry = yield* Reservation.Reservations
        const seed = Seed.generator()
        for (let round = 0; round < rounds; round++) {
          yield* sql`DELETE FROM keel_reservations WHERE port BETWEEN ${range.min} AND ${range.max}`
          const now = Date.now()
          const live = new Set<number>()
          // Dense rounds too: a quarter of them fill the range but for a few holes, or entirely.
          const liveShare = round % 4 === 0 ? 0.95 : 0.45
          for (let port = range.min; port <= range.max; port++) {
            const draw = seed.next()
            if (draw >= liveShare + 0.2) continue
            const expired = draw >= liveShare
            if (!expired) live.add(port)
            yield* sql`INSERT INTO keel_reservations ${sql.insert({
              path: `/lowest-free/${round}/${port}`,
              tag: "x",
              port,
              project: null,
              task: null,
              created_at: now - 10_000,
              last_used_at: now - 5_000,
              ttl_ms: expired ? 1_000 : null,
              expires_at: expired ? now - 4_000 : null
            })}`
          }
          let expected: number | undefined
          for (let port = range.min; port <= range.max && expected === undefined; port++)
            if (!live.has(port)) expected = port
          const dir = yield* freshDirectory(`lowest-${round}`)
          const reserved = yield* Effect.either(
            registry.reserve({ path: dir, cwd: dir, tag: "web", range, occupancy: { enabled: false } })
          )
          const held = [...live].sort((a, b) => a - b).join(",")
          if (expected === undefined) {
            expect(Either.isLeft(reserved) && reserved.left._tag, seed.explain(`live: ${held}`)).toBe(
              "NoPortAvailable"
            )
          } else {
            expect(
              Either.isRight(reserved) && reserved.right.reservation.port,
              seed.explain(`live: ${held}`)
            ).toBe(expected)
            yield* registry.release({ path: dir, cwd: dir, tag: "web" })
          }
        }
      })
    )
  })
})
