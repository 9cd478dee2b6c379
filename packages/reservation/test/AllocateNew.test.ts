/**
 * A new reservation of the common kind (one service, no preferred port or offset, no excluded span
 * in the range, occupancy not checked) is ONE autocommit statement on PostgreSQL and PGlite
 * (`keel_reservation_allocate_new`), and the whole allocation plan everywhere else and for every
 * other request. Pinned here: which requests take it, that it answers as the plan does (the lowest
 * free port, an expired holder giving its port up, a present key refreshed by the plan, exhaustion
 * decided by the plan), that concurrent callers on a pool of connections never share a port, and
 * that a failure reported after it ran is never re-run (rule 1: its outcome is unknown).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { expect, layer } from "@effect/vitest"
import { Reservation } from "@keel/reservation"
import { Retry } from "@keel/sql"
import { Faults, TestDatabase } from "@keel/testkit"
import { Effect } from "effect"
import { countInRange, faultyLayer, freshDirectory, rangesFrom } from "./support/ReservationTest.js"

/** A small, fast policy: what is re-run matters here, not how long it waits. */
const quick = Retry.policy(Faults.quickRetry)

const oneStatement = /keel_reservation_allocate_new/
const count = (statements: ReadonlyArray<string>, pattern: RegExp) =>
  statements.filter((statement) => pattern.test(statement)).length

TestDatabase.describeEach("A new reservation in one statement", (kind) => {
  const pg = kind === "postgres" || kind === "pglite"
  // PostgreSQL runs the statement in autocommit; PGlite (one session in-process) in a transaction.
  const autocommit = kind === "postgres"
  const freshRange = rangesFrom(14000)
  const off = { enabled: false } as const

  layer(faultyLayer(kind), { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect(
      "a new reservation takes the one statement on PostgreSQL and PGlite (no BEGIN); a present one is refreshed by the plan",
      () =>
        Effect.gen(function* () {
          const registry = yield* Reservation.Reservations
          const faults = yield* Faults.Faults
          const dir = yield* freshDirectory("one-statement")
          const range = freshRange(4)
          yield* faults.clear
          const created = yield* registry.reserve({ path: dir, cwd: dir, tag: "web", range, occupancy: off })
          expect(created).toMatchObject({ outcome: "created", reservation: { port: range.min, tag: "web" } })
          const first = yield* faults.statements
          expect(count(first, oneStatement)).toBe(pg ? 1 : 0)
          expect(count(first, /^BEGIN/)).toBe(autocommit ? 0 : 1)

          yield* faults.clear
          const again = yield* registry.reserve({
            path: dir,
            cwd: dir,
            tag: "web",
            range,
            occupancy: off,
            ttl: 300_000
          })
          expect(again).toMatchObject({ outcome: "refreshed", reservation: { port: range.min } })
          expect(again.reservation.expiresAt).not.toBeNull()
          const second = yield* faults.statements
          // The one statement found the key held and wrote nothing; the plan refreshed it.
          expect(count(second, oneStatement)).toBe(pg ? 1 : 0)
          expect(count(second, /^BEGIN/)).toBe(autocommit ? 1 : pg ? 2 : 1)
          expect(yield* countInRange(range)).toBe(1)
        })
    )

    it.effect(
      "labels and ttl are written as given, and an expired holder of the lowest port gives it up",
      () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const registry = yield* Reservation.Reservations
          const dir = yield* freshDirectory("expired-holder")
          const range = freshRange(3)
          const now = Date.now()
          yield* sql`INSERT INTO keel_reservations ${sql.insert({
            path: `${dir}-gone`,
            tag: "old",
            port: range.min,
            project: null,
            task: null,
            created_at: now - 10_000,
            last_used_at: now - 10_000,
            ttl_ms: 1_000,
            expires_at: now - 9_000
          })}`
          const reserved = yield* registry.reserve({
            path: dir,
            cwd: dir,
            tag: "api",
            range,
            occupancy: off,
            project: "shop",
            task: "t-1",
            ttl: 60_000
          })
          expect(reserved).toMatchObject({
            outcome: "created",
            reservation: { port: range.min, project: "shop", task: "t-1" }
          })
          const rows = yield* sql<{
            path: string
            ttl_ms: number
          }>`SELECT path, ttl_ms FROM keel_reservations WHERE port = ${range.min}`
          expect(rows.map((row) => [row.path, Number(row.ttl_ms)])).toEqual([[dir, 60_000]])
        })
    )

    it.effect("requests of any other kind never take the one statement", () =>
      Effect.gen(function* () {
        const registry = yield* Reservation.Reservations
        const faults = yield* Faults.Faults
        const range = freshRange(6)
        const requests = [
          { tag: "preferred", preferred: range.min + 2 },
          { tag: "excluded", exclude: [range.min] },
          { tag: "dry", dryRun: true }
        ]
        for (const extra of requests) {
          const dir = yield* freshDirectory(`other-${extra.tag}`)
          yield* faults.clear
          yield* registry.reserve({ path: dir, cwd: dir, range, occupancy: off, ...extra })
          expect(count(yield* faults.statements, oneStatement), extra.tag).toBe(0)
        }
        const probed = yield* freshDirectory("other-probed")
        yield* faults.clear
        yield* registry.reserve({ path: probed, cwd: probed, tag: "probed", range })
        expect(count(yield* faults.statements, oneStatement)).toBe(0)
        const group = yield* freshDirectory("other-group")
        yield* faults.clear
        yield* registry.reserveGroup({
          path: group,
          cwd: group,
          range: freshRange(4),
          occupancy: off,
          services: [{ tag: "a" }, { tag: "b" }]
        })
        expect(count(yield* faults.statements, oneStatement)).toBe(0)
      })
    )

    it.effect("a full range is decided by the plan: NoPortAvailable, nothing written", () =>
      Effect.gen(function* () {
        const registry = yield* Reservation.Reservations
        const range = freshRange(2)
        for (const tag of ["a", "b"]) {
          const dir = yield* freshDirectory(`full-${tag}`)
          yield* registry.reserve({ path: dir, cwd: dir, tag, range, occupancy: off })
        }
        const dir = yield* freshDirectory("full-c")
        const error = yield* Effect.flip(
          registry.reserve({ path: dir, cwd: dir, tag: "c", range, occupancy: off })
        )
        expect(error._tag).toBe("NoPortAvailable")
        expect(yield* countInRange(range)).toBe(2)
      })
    )

    it.effect("concurrent new reservations never share a port; the ones past the range fail cleanly", () =>
      Effect.gen(function* () {
        const registry = yield* Reservation.Reservations
        const range = freshRange(11)
        const dirs = yield* Effect.forEach(Array.from({ length: 15 }), (_, index) =>
          freshDirectory(`race-${index}`)
        )
        const results = yield* Effect.forEach(
          dirs,
          (dir) =>
            Effect.either(registry.reserve({ path: dir, cwd: dir, tag: "web", range, occupancy: off })),
          { concurrency: "unbounded" }
        )
        const ports = results.flatMap((result) =>
          result._tag === "Right" ? [result.right.reservation.port] : []
        )
        const failures = results.flatMap((result) => (result._tag === "Left" ? [result.left._tag] : []))
        expect(ports.length).toBe(11)
        expect(new Set(ports).size).toBe(11)
        expect(failures).toEqual(Array.from({ length: 4 }, () => "NoPortAvailable"))
        expect(yield* countInRange(range)).toBe(11)
      })
    )

    if (autocommit) {
      it.effect(
        "a failure reported after the one statement ran is not re-run: typed as unknown, and reserving again returns what was written",
        () =>
          Effect.gen(function* () {
            const registry = yield* Reservation.Reservations
            const faults = yield* Faults.Faults
            const dir = yield* freshDirectory("unknown-outcome")
            const range = freshRange(3)
            yield* faults.clear
            yield* faults.inject({ match: oneStatement, timing: "after", error: "locked" })
            const request = { path: dir, cwd: dir, tag: "web", range, occupancy: off }
            const error = yield* Effect.flip(registry.reserve(request))
            expect(yield* faults.fired).toBe(1)
            expect(error).toMatchObject({
              _tag: "ReservationStoreError",
              cause: { _tag: "CommitOutcomeUnknown" }
            })
            expect(count(yield* faults.statements, oneStatement)).toBe(1)
            expect(yield* countInRange(range)).toBe(1)
            const again = yield* registry.reserve(request)
            expect(again).toMatchObject({ outcome: "refreshed", reservation: { port: range.min } })
          }).pipe(Retry.withPolicy(quick))
      )
    }
  })
})
