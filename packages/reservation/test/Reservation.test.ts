import { symlinkSync, writeFileSync } from "node:fs"
import * as net from "node:net"
import { dirname, join } from "node:path"
import { expect, layer } from "@effect/vitest"
import { Reservation, type Schemas } from "@keel/reservation"
import { Migrations } from "@keel/sql"
import { TestDatabase } from "@keel/testkit"
import { DateTime, Effect, TestClock } from "effect"
import {
  countInRange,
  freshDirectory,
  Marked,
  makeDirectory,
  rangesFrom,
  layer as registryLayer,
  removeDirectory,
  snapshot
} from "./support/ReservationTest.js"

const Reservations = Reservation.Reservations

/** A listening TCP socket on `host` (an OS-chosen port), closed with the scope. */
const listen = (host: string) =>
  Effect.acquireRelease(
    Effect.async<net.Server>((resume) => {
      const server = net.createServer()
      server.once("error", (error) => resume(Effect.die(error)))
      server.listen({ port: 0, host }, () => resume(Effect.succeed(server)))
    }),
    (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
  ).pipe(
    Effect.map((server) => {
      const address = server.address()
      return typeof address === "object" && address !== null ? address.port : -1
    })
  )

const millis = DateTime.toEpochMillis

TestDatabase.describeEach("Reservation", (kind) => {
  const freshRange = rangesFrom(11000)

  layer(registryLayer(kind), { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("a new (path, tag) gets the lowest free port of the range, recorded with its labels", () =>
      Effect.gen(function* () {
        const registry = yield* Reservations
        const dir = yield* freshDirectory("lowest")
        const range = freshRange(5)
        const reserved = yield* registry.reserve({
          path: dir,
          cwd: dir,
          tag: "web",
          range,
          project: "keel",
          task: "issue-4"
        })
        expect(reserved.outcome).toBe("created")
        expect(reserved.reservation).toMatchObject({
          tag: "web",
          port: range.min,
          project: "keel",
          task: "issue-4",
          expiresAt: null
        })
        const shown = yield* registry.show({ path: dir, tag: "web" })
        expect(shown).toEqual(reserved.reservation)
        expect(yield* registry.showPort({ port: range.min })).toEqual(reserved.reservation)
      })
    )

    it.effect("reserving the same (path, tag) again returns the same port and refreshes it", () =>
      Effect.gen(function* () {
        const registry = yield* Reservations
        const dir = yield* freshDirectory("idempotent")
        const range = freshRange(5)
        const first = yield* registry.reserve({ path: dir, cwd: dir, tag: "api", range })
        const again = yield* registry.reserve({
          path: dir,
          cwd: dir,
          tag: "api",
          range,
          preferred: range.max
        })
        expect(again.outcome).toBe("refreshed")
        expect(again.reservation.port).toBe(first.reservation.port)
        expect(millis(again.reservation.lastUsedAt)).toBeGreaterThanOrEqual(
          millis(first.reservation.lastUsedAt)
        )
        expect(yield* countInRange(range)).toBe(1)
      })
    )

    it.effect("the untagged reservation and each tag of one path hold different ports", () =>
      Effect.gen(function* () {
        const registry = yield* Reservations
        const dir = yield* freshDirectory("tags")
        const range = freshRange(5)
        const plain = yield* registry.reserve({ path: dir, cwd: dir, range })
        const web = yield* registry.reserve({ path: dir, cwd: dir, range, tag: "web" })
        const api = yield* registry.reserve({ path: dir, cwd: dir, range, tag: " api " })
        expect(plain.reservation.tag).toBeNull()
        expect(api.reservation.tag).toBe("api")
        expect([plain, web, api].map((r) => r.reservation.port)).toEqual([
          range.min,
          range.min + 1,
          range.min + 2
        ])
        const again = yield* registry.reserve({ path: dir, cwd: dir, range })
        expect(again.reservation.port).toBe(range.min)
      })
    )

    it.effect("without a range the configured default range and exclusions apply", () =>
      Effect.gen(function* () {
        const registry = yield* Reservations
        const dir = yield* freshDirectory("defaults")
        const reserved = yield* registry.reserve({ path: dir, cwd: dir })
        // testConfig: range 10500-10519 with 10500-10509 excluded.
        expect(reserved.reservation.port).toBe(10510)
      })
    )

    it.effect("a free preferred port is honoured, inside the range or outside it", () =>
      Effect.gen(function* () {
        const registry = yield* Reservations
        const dir = yield* freshDirectory("preferred")
        const range = freshRange(10)
        const outside = freshRange(1)
        const inside = yield* registry.reserve({
          path: dir,
          cwd: dir,
          tag: "a",
          range,
          preferred: range.min + 7
        })
        const beyond = yield* registry.reserve({
          path: dir,
          cwd: dir,
          tag: "b",
          range,
          preferred: outside.min
        })
        expect(inside.reservation.port).toBe(range.min + 7)
        expect(beyond.reservation.port).toBe(outside.min)
      })
    )

    it.effect(
      "a preferred port that is reserved, excluded or occupied falls back to the lowest free port",
      () =>
        Effect.gen(function* () {
          const registry = yield* Reservations
          const marked = yield* Marked
          const dir = yield* freshDirectory("fallback")
          const range = freshRange(10)
          const holder = yield* registry.reserve({
            path: dir,
            cwd: dir,
            tag: "holder",
            range,
            preferred: range.min + 5
          })
          expect(holder.reservation.port).toBe(range.min + 5)
          const reserved = yield* registry.reserve({
            path: dir,
            cwd: dir,
            tag: "r",
            range,
            preferred: range.min + 5
          })
          expect(reserved.reservation.port).toBe(range.min)
          const excluded = yield* registry.reserve({
            path: dir,
            cwd: dir,
            tag: "x",
            range,
            preferred: range.min + 6,
            exclude: [range.min + 6]
          })
          expect(excluded.reservation.port).toBe(range.min + 1)
          yield* marked.occupy(range.min + 7)
          const occupied = yield* registry.reserve({
            path: dir,
            cwd: dir,
            tag: "o",
            range,
            preferred: range.min + 7
          })
          expect(occupied.reservation.port).toBe(range.min + 2)
        })
    )

    it.effect("excluded ports (per call, single or ranges) are never handed out", () =>
      Effect.gen(function* () {
        const registry = yield* Reservations
        const dir = yield* freshDirectory("exclude")
        const range = freshRange(6)
        const exclude = [
          range.min,
          `${range.min + 1}-${range.min + 2}`,
          { min: range.min + 4, max: range.min + 4 }
        ]
        const first = yield* registry.reserve({ path: dir, cwd: dir, tag: "a", range, exclude })
        expect(first.reservation.port).toBe(range.min + 3)
        const second = yield* registry.reserve({ path: dir, cwd: dir, tag: "b", range, exclude })
        expect(second.reservation.port).toBe(range.max)
        const third = yield* Effect.flip(registry.reserve({ path: dir, cwd: dir, tag: "c", range, exclude }))
        expect(third._tag).toBe("NoPortAvailable")
      })
    )

    it.effect("a port marked occupied is skipped; with occupancy off for the call it is handed out", () =>
      Effect.gen(function* () {
        const registry = yield* Reservations
        const marked = yield* Marked
        const dir = yield* freshDirectory("occupied")
        const range = freshRange(3)
        yield* marked.occupy(range.min)
        const checked = yield* registry.reserve({ path: dir, cwd: dir, tag: "checked", range })
        expect(checked.reservation.port).toBe(range.min + 1)
        const unchecked = yield* registry.reserve({
          path: dir,
          cwd: dir,
          tag: "unchecked",
          range,
          occupancy: { enabled: false }
        })
        expect(unchecked.reservation.port).toBe(range.min)
      })
    )

    it.effect("a port with a real listening socket on 127.0.0.1, ::1 or 0.0.0.0 is never handed out", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const registry = yield* Reservations
          const dir = yield* freshDirectory("listening")
          for (const host of ["127.0.0.1", "::1", "0.0.0.0"]) {
            const port = yield* listen(host)
            const range = { min: port, max: Math.min(65535, port + 20) }
            const reserved = yield* registry.reserve({
              path: dir,
              cwd: dir,
              tag: `near-${host}`,
              range,
              preferred: port
            })
            expect(reserved.reservation.port).not.toBe(port)
            const alone = yield* Effect.flip(
              registry.reserve({ path: dir, cwd: dir, tag: `only-${host}`, range: { min: port, max: port } })
            )
            expect(alone._tag).toBe("NoPortAvailable")
            const group = yield* registry.reserveGroup({
              path: dir,
              cwd: dir,
              range,
              services: [
                { tag: `g1-${host}` },
                { tag: `g2-${host}`, offset: 0 },
                { tag: `g3-${host}`, offset: 1 }
              ]
            })
            expect(group.reservations.map((r) => r.reservation.port)).not.toContain(port)
            yield* registry.release({ path: dir, cwd: dir })
          }
        })
      )
    )

    it.effect(
      "an exhausted range is NoPortAvailable with a message naming the range, and nothing is written",
      () =>
        Effect.gen(function* () {
          const registry = yield* Reservations
          const dir = yield* freshDirectory("exhausted")
          const range = freshRange(2)
          yield* registry.reserve({ path: dir, cwd: dir, tag: "a", range })
          yield* registry.reserve({ path: dir, cwd: dir, tag: "b", range })
          const before = yield* snapshot
          const error = yield* Effect.flip(registry.reserve({ path: dir, cwd: dir, tag: "c", range }))
          expect(error._tag).toBe("NoPortAvailable")
          expect(error.message).toContain(`${range.min}-${range.max}`)
          expect(error.message).toContain("[c]")
          expect(yield* snapshot).toEqual(before)
        })
    )

    it.effect("project and task are sticky: a different one needs force, which overwrites it", () =>
      Effect.gen(function* () {
        const registry = yield* Reservations
        const dir = yield* freshDirectory("sticky")
        const range = freshRange(3)
        yield* registry.reserve({ path: dir, cwd: dir, tag: "s", range, project: "one", task: "t1" })
        const before = yield* snapshot
        const error = yield* Effect.flip(
          registry.reserve({ path: dir, cwd: dir, tag: "s", range, project: "two" })
        )
        expect(error).toMatchObject({
          _tag: "StickyFieldChanged",
          field: "project",
          current: "one",
          requested: "two"
        })
        expect(yield* snapshot).toEqual(before)
        const same = yield* registry.reserve({ path: dir, cwd: dir, tag: "s", range })
        expect(same.reservation.project).toBe("one")
        const forced = yield* registry.reserve({
          path: dir,
          cwd: dir,
          tag: "s",
          range,
          project: "two",
          force: true
        })
        expect(forced.reservation).toMatchObject({ project: "two", task: "t1", port: range.min })
      })
    )

    it.effect("force moves an existing reservation to its preferred port and frees the old one", () =>
      Effect.gen(function* () {
        const registry = yield* Reservations
        const dir = yield* freshDirectory("move")
        const range = freshRange(5)
        const first = yield* registry.reserve({ path: dir, cwd: dir, tag: "m", range })
        const moved = yield* registry.reserve({
          path: dir,
          cwd: dir,
          tag: "m",
          range,
          preferred: range.max,
          force: true
        })
        expect(moved.outcome).toBe("moved")
        expect(moved.reservation.port).toBe(range.max)
        expect(millis(moved.reservation.createdAt)).toBe(millis(first.reservation.createdAt))
        const other = yield* registry.reserve({ path: dir, cwd: dir, tag: "n", range })
        expect(other.reservation.port).toBe(range.min)
      })
    )

    it.effect("a forced group can hand the port one of its services moves away from to another service", () =>
      Effect.gen(function* () {
        const registry = yield* Reservations
        const dir = yield* freshDirectory("swap")
        const range = freshRange(5)
        yield* registry.reserve({ path: dir, cwd: dir, tag: "a", range })
        const group = yield* registry.reserveGroup({
          path: dir,
          cwd: dir,
          range,
          force: true,
          services: [{ tag: "b" }, { tag: "a", preferred: range.min + 3 }]
        })
        expect(group.reservations.map((r) => [r.reservation.tag, r.reservation.port, r.outcome])).toEqual([
          ["b", range.min, "created"],
          ["a", range.min + 3, "moved"]
        ])
      })
    )

    it.effect("force takes an excluded or occupied preferred port", () =>
      Effect.gen(function* () {
        const registry = yield* Reservations
        const marked = yield* Marked
        const dir = yield* freshDirectory("force")
        const range = freshRange(5)
        yield* marked.occupy(range.min + 1)
        const occupied = yield* registry.reserve({
          path: dir,
          cwd: dir,
          tag: "o",
          range,
          preferred: range.min + 1,
          force: true
        })
        expect(occupied.reservation.port).toBe(range.min + 1)
        const excluded = yield* registry.reserve({
          path: dir,
          cwd: dir,
          tag: "e",
          range,
          preferred: range.min + 2,
          exclude: [range.min + 2],
          force: true
        })
        expect(excluded.reservation.port).toBe(range.min + 2)
      })
    )

    it.effect(
      "force never takes a port another reservation holds: PreferredPortReserved, nothing changed",
      () =>
        Effect.gen(function* () {
          const registry = yield* Reservations
          const dir = yield* freshDirectory("steal")
          const range = freshRange(5)
          yield* registry.reserve({ path: dir, cwd: dir, tag: "owner", range })
          const before = yield* snapshot
          const error = yield* Effect.flip(
            registry.reserve({ path: dir, cwd: dir, tag: "thief", range, preferred: range.min, force: true })
          )
          expect(error).toMatchObject({ _tag: "PreferredPortReserved", port: range.min, holderTag: "owner" })
          expect(yield* snapshot).toEqual(before)
        })
    )

    it.effect("a group gets a port per tag in one go, lowest free first", () =>
      Effect.gen(function* () {
        const registry = yield* Reservations
        const dir = yield* freshDirectory("group")
        const range = freshRange(10)
        yield* registry.reserve({
          path: dir,
          cwd: dir,
          tag: "existing-other",
          range,
          preferred: range.min + 1
        })
        const group = yield* registry.reserveGroup({
          path: dir,
          cwd: dir,
          range,
          services: [{ tag: "web" }, { tag: "api", preferred: range.max }, { tag: "db" }]
        })
        expect(group.reservations.map((r) => [r.reservation.tag, r.reservation.port, r.outcome])).toEqual([
          ["web", range.min, "created"],
          ["api", range.max, "created"],
          ["db", range.min + 2, "created"]
        ])
      })
    )

    it.effect("services with offsets are placed as one pattern at the lowest base where all are free", () =>
      Effect.gen(function* () {
        const registry = yield* Reservations
        const marked = yield* Marked
        const dir = yield* freshDirectory("offsets")
        const range = freshRange(20)
        yield* registry.reserve({ path: dir, cwd: dir, tag: "blocker", range, preferred: range.min + 1 })
        yield* marked.occupy(range.min + 7)
        // base min: +1 reserved; base min+1: +1 itself; base min+2: +2+5 = min+7 occupied; base min+3 works.
        const group = yield* registry.reserveGroup({
          path: dir,
          cwd: dir,
          range,
          services: [
            { tag: "web", offset: 0 },
            { tag: "api", offset: 1 },
            { tag: "metrics", offset: 5 }
          ]
        })
        expect(group.reservations.map((r) => r.reservation.port)).toEqual([
          range.min + 3,
          range.min + 4,
          range.min + 8
        ])
        const based = yield* registry.reserveGroup({
          path: dir,
          cwd: dir,
          range,
          base: range.min + 12,
          services: [
            { tag: "b-web", offset: 0 },
            { tag: "b-api", offset: 2 }
          ]
        })
        expect(based.reservations.map((r) => r.reservation.port)).toEqual([range.min + 12, range.min + 14])
      })
    )

    it.effect("a group whose last tag cannot be satisfied leaves no partial reservation", () =>
      Effect.gen(function* () {
        const registry = yield* Reservations
        const dir = yield* freshDirectory("all-or-nothing")
        const range = freshRange(4)
        yield* registry.reserve({ path: dir, cwd: dir, tag: "taken", range, preferred: range.min + 1 })
        yield* registry.reserve({ path: dir, cwd: dir, tag: "taken-too", range, preferred: range.min + 3 })
        const before = yield* snapshot
        const error = yield* Effect.flip(
          registry.reserveGroup({
            path: dir,
            cwd: dir,
            range,
            services: [{ tag: "first" }, { tag: "second" }, { tag: "last" }]
          })
        )
        expect(error).toMatchObject({ _tag: "NoPortAvailable", tag: "last", requested: 3 })
        expect(yield* snapshot).toEqual(before)
        expect(yield* countInRange(range)).toBe(2)
      })
    )

    it.effect("reserving a group again keeps its ports and adds only the new tags", () =>
      Effect.gen(function* () {
        const registry = yield* Reservations
        const dir = yield* freshDirectory("group-again")
        const range = freshRange(6)
        const first = yield* registry.reserveGroup({
          path: dir,
          cwd: dir,
          range,
          services: [{ tag: "a" }, { tag: "b" }]
        })
        const second = yield* registry.reserveGroup({
          path: dir,
          cwd: dir,
          range,
          services: [{ tag: "b" }, { tag: "c" }, { tag: "a" }]
        })
        const portOf = (group: typeof first, tag: string) =>
          group.reservations.find((r) => r.reservation.tag === tag)?.reservation.port
        expect(portOf(second, "a")).toBe(portOf(first, "a"))
        expect(portOf(second, "b")).toBe(portOf(first, "b"))
        expect(second.reservations.map((r) => r.outcome)).toEqual(["refreshed", "created", "refreshed"])
        expect(portOf(second, "c")).toBe(range.min + 2)
      })
    )

    it.effect(
      "a malformed group (duplicate tag, preferred or offset; empty) is InvalidRequest and changes nothing",
      () =>
        Effect.gen(function* () {
          const registry = yield* Reservations
          const dir = yield* freshDirectory("bad-group")
          const range = freshRange(5)
          const before = yield* snapshot
          const attempts = [
            [[{ tag: "a" }, { tag: " a" }], "services[1].tag"],
            [
              [
                { tag: "a", preferred: range.min },
                { tag: "b", preferred: range.min }
              ],
              "services[1].preferred"
            ],
            [
              [
                { tag: "a", offset: 1 },
                { tag: "b", offset: 1 }
              ],
              "services[1].offset"
            ],
            [[{ tag: "a", offset: -1 }], "services[0].offset"],
            [[], "services"]
          ] as const
          for (const [services, field] of attempts) {
            const error = yield* Effect.flip(registry.reserveGroup({ path: dir, cwd: dir, range, services }))
            expect(error).toMatchObject({ _tag: "InvalidRequest", field })
          }
          expect(yield* snapshot).toEqual(before)
        })
    )

    it.effect("release removes one tag, or every tag of a path, and is idempotent", () =>
      Effect.gen(function* () {
        const registry = yield* Reservations
        const dir = yield* freshDirectory("release")
        const range = freshRange(5)
        yield* registry.reserveGroup({
          path: dir,
          cwd: dir,
          range,
          services: [{ tag: "a" }, { tag: "b" }, { tag: "c" }]
        })
        const one = yield* registry.release({ path: dir, cwd: dir, tag: "b" })
        expect(one.released.map((r) => r.tag)).toEqual(["b"])
        expect((yield* registry.list({ pathPrefix: dir })).map((r) => r.tag)).toEqual(["a", "c"])
        const rest = yield* registry.release({ path: dir, cwd: dir })
        expect(rest.released.map((r) => r.tag)).toEqual(["a", "c"])
        expect((yield* registry.release({ path: dir, cwd: dir })).released).toEqual([])
        expect(yield* countInRange(range)).toBe(0)
      })
    )

    it.effect("release can target only the untagged reservation, and a dry run only reports", () =>
      Effect.gen(function* () {
        const registry = yield* Reservations
        const dir = yield* freshDirectory("release-untagged")
        const range = freshRange(4)
        yield* registry.reserve({ path: dir, cwd: dir, range })
        yield* registry.reserve({ path: dir, cwd: dir, range, tag: "web" })
        const before = yield* snapshot
        const dry = yield* registry.release({ path: dir, cwd: dir, dryRun: true })
        expect(dry.dryRun).toBe(true)
        expect(dry.released.map((r) => r.tag)).toEqual([null, "web"])
        expect(yield* snapshot).toEqual(before)
        const both = yield* Effect.flip(
          registry.release({ path: dir, cwd: dir, tag: "web", untaggedOnly: true })
        )
        expect(both).toMatchObject({ _tag: "InvalidRequest", field: "untaggedOnly" })
        const untagged = yield* registry.release({ path: dir, cwd: dir, untaggedOnly: true })
        expect(untagged.released.map((r) => r.tag)).toEqual([null])
        expect((yield* registry.list({ pathPrefix: dir })).map((r) => r.tag)).toEqual(["web"])
      })
    )

    it.effect("recursive release removes descendants but not a sibling that shares a name prefix", () =>
      Effect.gen(function* () {
        const registry = yield* Reservations
        const root = yield* freshDirectory("tree")
        const child = join(root, "app")
        const grandchild = join(root, "app", "svc")
        const sibling = join(root, "application")
        yield* Effect.forEach([child, grandchild, sibling], makeDirectory)
        const range = freshRange(5)
        for (const path of [child, grandchild, sibling]) yield* registry.reserve({ path, cwd: root, range })
        const released = yield* registry.release({ path: child, cwd: root, recursive: true })
        expect(released.released.map((r) => r.path).sort()).toEqual([child, grandchild].sort())
        expect((yield* registry.list({ pathPrefix: root })).map((r) => r.path)).toEqual([sibling])
      })
    )

    it.effect("a reservation whose directory was deleted can still be shown and released", () =>
      Effect.gen(function* () {
        const registry = yield* Reservations
        const dir = yield* freshDirectory("deleted")
        const range = freshRange(3)
        yield* registry.reserve({ path: dir, cwd: dir, range })
        yield* removeDirectory(dir)
        expect((yield* registry.show({ path: dir })).port).toBe(range.min)
        const released = yield* registry.release({ path: dir, cwd: dirname(dir) })
        expect(released.released.length).toBe(1)
      })
    )

    it.effect("list filters by path prefix (whole segments), project and tag", () =>
      Effect.gen(function* () {
        const registry = yield* Reservations
        const root = yield* freshDirectory("list")
        const a = join(root, "a")
        const ab = join(root, "ab")
        yield* Effect.forEach([a, ab], makeDirectory)
        const range = freshRange(6)
        yield* registry.reserve({ path: a, cwd: root, range, tag: "web", project: "p1" })
        yield* registry.reserve({ path: a, cwd: root, range, tag: "api", project: "p2" })
        yield* registry.reserve({ path: ab, cwd: root, range, tag: "web", project: "p1" })
        const keys = (list: ReadonlyArray<Schemas.Reservation>) => list.map((r) => `${r.path}#${r.tag}`)
        expect(keys(yield* registry.list({ pathPrefix: a }))).toEqual([`${a}#api`, `${a}#web`])
        expect(keys(yield* registry.list({ pathPrefix: root, tag: "web" }))).toEqual([
          `${a}#web`,
          `${ab}#web`
        ])
        expect(keys(yield* registry.list({ pathPrefix: root, project: "p2" }))).toEqual([`${a}#api`])
      })
    )

    it.effect("show of an unknown key or port is ReservationNotFound", () =>
      Effect.gen(function* () {
        const registry = yield* Reservations
        const dir = yield* freshDirectory("unknown")
        const range = freshRange(1)
        expect((yield* Effect.flip(registry.show({ path: dir, tag: "none" })))._tag).toBe(
          "ReservationNotFound"
        )
        expect((yield* Effect.flip(registry.showPort({ port: range.min })))._tag).toBe("ReservationNotFound")
      })
    )

    it.effect("a path is stored as its real path: a symlink and its target are one key", () =>
      Effect.gen(function* () {
        const registry = yield* Reservations
        const dir = yield* freshDirectory("real")
        const link = `${dir}-link`
        yield* Effect.sync(() => symlinkSync(dir, link))
        const range = freshRange(3)
        const viaLink = yield* registry.reserve({ path: `${link}/./`, cwd: dir, range })
        expect(viaLink.reservation.path).toBe(dir)
        const direct = yield* registry.reserve({ path: dir, cwd: link, range })
        expect(direct.outcome).toBe("refreshed")
        expect(direct.reservation.port).toBe(viaLink.reservation.port)
      })
    )

    it.effect(
      "ancestors and descendants of the working directory are related; others need allowUnrelated",
      () =>
        Effect.gen(function* () {
          const registry = yield* Reservations
          const root = yield* freshDirectory("relation")
          const inner = join(root, "inner")
          const other = yield* freshDirectory("elsewhere")
          yield* makeDirectory(inner)
          const range = freshRange(5)
          yield* registry.reserve({ path: root, cwd: inner, range })
          yield* registry.reserve({ path: inner, cwd: root, range })
          const before = yield* snapshot
          const error = yield* Effect.flip(registry.reserve({ path: other, cwd: inner, range }))
          expect(error).toMatchObject({ _tag: "UnrelatedPath", path: other, cwd: inner })
          const releaseError = yield* Effect.flip(registry.release({ path: root, cwd: other }))
          expect(releaseError._tag).toBe("UnrelatedPath")
          expect(yield* snapshot).toEqual(before)
          const allowed = yield* registry.reserve({ path: other, cwd: inner, range, allowUnrelated: true })
          expect(allowed.outcome).toBe("created")
        })
    )

    it.effect("bad input is a typed error naming the field, and changes nothing", () =>
      Effect.gen(function* () {
        const registry = yield* Reservations
        const dir = yield* freshDirectory("bad-input")
        const file = join(dir, "file.txt")
        yield* Effect.sync(() => writeFileSync(file, "not a directory"))
        const range = freshRange(3)
        yield* registry.reserve({ path: dir, cwd: dir, range, tag: "existing" })
        const before = yield* snapshot
        const ok = { path: dir, cwd: dir, range }
        const cases = [
          [
            { ...ok, path: "relative/dir" },
            { _tag: "InvalidPath", field: "path", problem: "relative" }
          ],
          [
            { ...ok, path: "./" },
            { _tag: "InvalidPath", problem: "relative" }
          ],
          [
            { ...ok, path: join(dir, "missing") },
            { _tag: "InvalidPath", problem: "missing" }
          ],
          [
            { ...ok, path: file },
            { _tag: "InvalidPath", problem: "not-a-directory" }
          ],
          [
            { ...ok, path: `${dir}\0x` },
            { _tag: "InvalidPath", problem: "malformed" }
          ],
          [
            { ...ok, cwd: "." },
            { _tag: "InvalidPath", field: "cwd", problem: "relative" }
          ],
          [
            { ...ok, preferred: 0 },
            { _tag: "InvalidPort", field: "preferred", value: "0" }
          ],
          [
            { ...ok, preferred: 65536 },
            { _tag: "InvalidPort", field: "preferred" }
          ],
          [
            { ...ok, preferred: -80 },
            { _tag: "InvalidPort", field: "preferred" }
          ],
          [
            { ...ok, preferred: 80.5 },
            { _tag: "InvalidPort", field: "preferred" }
          ],
          [
            { ...ok, preferred: Number.NaN },
            { _tag: "InvalidPort", field: "preferred" }
          ],
          [
            { ...ok, range: { min: 0, max: 10 } },
            { _tag: "InvalidPort", field: "range.min" }
          ],
          [
            { ...ok, range: { min: 10, max: 70000 } },
            { _tag: "InvalidPort", field: "range.max" }
          ],
          [
            { ...ok, range: "7000-5000" },
            { _tag: "InvalidRange", field: "range", min: 7000, max: 5000 }
          ],
          [{ ...ok, range: { min: 6000, max: 5999 } }, { _tag: "InvalidRange" }],
          [
            { ...ok, range: "lots" },
            { _tag: "InvalidPort", field: "range" }
          ],
          [
            { ...ok, exclude: [5000, 99999] },
            { _tag: "InvalidPort", field: "exclude[1]" }
          ],
          [
            { ...ok, exclude: ["20-10"] },
            { _tag: "InvalidRange", field: "exclude[0]" }
          ],
          [
            { ...ok, tag: "web\nINJECTED=1" },
            { _tag: "InvalidTag", field: "tag" }
          ],
          [{ ...ok, tag: "bell\u0007" }, { _tag: "InvalidTag" }],
          [{ ...ok, tag: "del\u007f" }, { _tag: "InvalidTag" }],
          [{ ...ok, tag: "line\u2028separator" }, { _tag: "InvalidTag" }],
          [{ ...ok, tag: "   " }, { _tag: "InvalidTag" }],
          [{ ...ok, tag: "x".repeat(129) }, { _tag: "InvalidTag" }],
          [
            { ...ok, project: "esc\u001b[31m" },
            { _tag: "InvalidLabel", field: "project" }
          ],
          [
            { ...ok, ttl: 0 },
            { _tag: "InvalidRequest", field: "ttl" }
          ],
          [
            { ...ok, ttl: "soon" },
            { _tag: "InvalidRequest", field: "ttl" }
          ],
          [
            { ...ok, occupancy: { hosts: ["localhost"] } },
            { _tag: "InvalidRequest", field: "occupancy.hosts[0]" }
          ],
          [
            { ...ok, occupancy: { timeoutMs: 0 } },
            { _tag: "InvalidRequest", field: "occupancy.timeoutMs" }
          ]
        ] as const
        for (const [request, expected] of cases) {
          const error = yield* Effect.flip(registry.reserve(request))
          expect(error, JSON.stringify(request)).toMatchObject(expected)
          expect(error.message.length).toBeGreaterThan(0)
        }
        const groupError = yield* Effect.flip(
          registry.reserveGroup({ ...ok, services: [{ tag: "ok" }, { tag: "bad\ttag" }] })
        )
        expect(groupError).toMatchObject({ _tag: "InvalidTag", field: "services[1].tag" })
        const portError = yield* Effect.flip(registry.showPort({ port: 70000 }))
        expect(portError).toMatchObject({ _tag: "InvalidPort", field: "port" })
        expect(yield* snapshot).toEqual(before)
      })
    )

    it.effect("the schema is migrated once: starting the registry again applies nothing", () =>
      Effect.gen(function* () {
        expect(yield* Migrations.run(Reservation.migrations)).toEqual([])
        const status = yield* Migrations.status(Reservation.migrations)
        expect(status.map((migration) => migration.state)).toEqual(["applied", "applied", "applied"])
      })
    )

    it.effect("cleanup removes reservations whose directory is gone; a dry run only reports them", () =>
      Effect.gen(function* () {
        const registry = yield* Reservations
        const kept = yield* freshDirectory("kept")
        const gone = yield* freshDirectory("gone")
        const range = freshRange(4)
        yield* registry.reserve({ path: kept, cwd: kept, range })
        yield* registry.reserve({ path: gone, cwd: gone, range, tag: "a" })
        yield* registry.reserve({ path: gone, cwd: gone, range, tag: "b" })
        yield* removeDirectory(gone)
        const mine = (report: Schemas.CleanupReport) =>
          report.removed
            .filter((entry) => entry.reservation.path === gone || entry.reservation.path === kept)
            .map((entry) => [entry.reservation.tag, entry.reason])
        const dry = yield* registry.cleanup({ dryRun: true })
        expect(dry.dryRun).toBe(true)
        expect(mine(dry)).toEqual([
          ["a", "missing-path"],
          ["b", "missing-path"]
        ])
        expect(yield* countInRange(range)).toBe(3)
        const wet = yield* registry.cleanup()
        expect(mine(wet)).toEqual(mine(dry))
        expect((yield* registry.list({ pathPrefix: dirname(gone) })).map((r) => r.path)).not.toContain(gone)
        expect(yield* countInRange(range)).toBe(1)
      })
    )
  })

  // Time-controlled: TestClock starts every test at epoch 0.
  layer(registryLayer(kind), { timeout: 120_000 })((it) => {
    it.effect(
      "a reservation made with a ttl expires ttl after its last use; reserving again extends it",
      () =>
        Effect.gen(function* () {
          const registry = yield* Reservations
          const dir = yield* freshDirectory("ttl")
          const range = freshRange(3)
          yield* TestClock.setTime(1_000_000)
          const made = yield* registry.reserve({ path: dir, cwd: dir, range, ttl: "1 hour" })
          expect(made.reservation.expiresAt === null ? null : millis(made.reservation.expiresAt)).toBe(
            1_000_000 + 3_600_000
          )
          yield* TestClock.adjust("30 minutes")
          const again = yield* registry.reserve({ path: dir, cwd: dir, range })
          expect(millis(again.reservation.lastUsedAt)).toBe(1_000_000 + 1_800_000)
          expect(again.reservation.expiresAt === null ? null : millis(again.reservation.expiresAt)).toBe(
            1_000_000 + 1_800_000 + 3_600_000
          )
        })
    )

    it.effect("cleanup removes expired reservations (dry run first) and keeps live ones", () =>
      Effect.gen(function* () {
        const registry = yield* Reservations
        const dir = yield* freshDirectory("expire")
        const range = freshRange(4)
        yield* TestClock.setTime(5_000_000)
        yield* registry.reserve({ path: dir, cwd: dir, range, tag: "short", ttl: 60_000 })
        yield* registry.reserve({ path: dir, cwd: dir, range, tag: "long", ttl: "2 hours" })
        yield* registry.reserve({ path: dir, cwd: dir, range, tag: "forever" })
        yield* TestClock.adjust("5 minutes")
        const mine = (report: Schemas.CleanupReport) =>
          report.removed
            .filter((entry) => entry.reservation.path === dir)
            .map((e) => [e.reservation.tag, e.reason])
        expect(mine(yield* registry.cleanup({ dryRun: true }))).toEqual([["short", "expired"]])
        expect(yield* countInRange(range)).toBe(3)
        expect(mine(yield* registry.cleanup())).toEqual([["short", "expired"]])
        expect((yield* registry.list({ pathPrefix: dir })).map((r) => r.tag)).toEqual(["forever", "long"])
      })
    )

    it.effect("an expired reservation's port goes to the next reservation, in the same transaction", () =>
      Effect.gen(function* () {
        const registry = yield* Reservations
        const dir = yield* freshDirectory("reclaim")
        const range = freshRange(1)
        yield* TestClock.setTime(9_000_000)
        yield* registry.reserve({ path: dir, cwd: dir, range, tag: "old", ttl: 1_000 })
        const refused = yield* Effect.flip(registry.reserve({ path: dir, cwd: dir, range, tag: "new" }))
        expect(refused._tag).toBe("NoPortAvailable")
        yield* TestClock.adjust("2 seconds")
        const reclaimed = yield* registry.reserve({ path: dir, cwd: dir, range, tag: "new" })
        expect(reclaimed.reservation.port).toBe(range.min)
        expect((yield* registry.list({ pathPrefix: dir })).map((r) => r.tag)).toEqual(["new"])
      })
    )

    it.effect("an expired reservation reserved again by its own key is refreshed, not replaced", () =>
      Effect.gen(function* () {
        const registry = yield* Reservations
        const dir = yield* freshDirectory("revive")
        const range = freshRange(3)
        yield* TestClock.setTime(2_000_000)
        const first = yield* registry.reserve({
          path: dir,
          cwd: dir,
          range,
          tag: "x",
          ttl: 1_000,
          preferred: range.max
        })
        yield* TestClock.adjust("1 minute")
        const again = yield* registry.reserve({ path: dir, cwd: dir, range, tag: "x" })
        expect(again.outcome).toBe("refreshed")
        expect(again.reservation.port).toBe(first.reservation.port)
      })
    )

    it.effect("cleanup with unusedFor removes reservations not used for that long", () =>
      Effect.gen(function* () {
        const registry = yield* Reservations
        const dir = yield* freshDirectory("unused")
        const range = freshRange(3)
        yield* TestClock.setTime(20_000_000)
        yield* registry.reserve({ path: dir, cwd: dir, range, tag: "stale" })
        yield* TestClock.adjust("10 days")
        yield* registry.reserve({ path: dir, cwd: dir, range, tag: "fresh" })
        const report = yield* registry.cleanup({ unusedFor: "7 days", expired: false, missingPaths: false })
        expect(
          report.removed.filter((e) => e.reservation.path === dir).map((e) => e.reservation.tag)
        ).toEqual(["stale"])
        const error = yield* Effect.flip(registry.cleanup({ unusedFor: -5 }))
        expect(error).toMatchObject({ _tag: "InvalidRequest", field: "unusedFor" })
      })
    )
  })
})
