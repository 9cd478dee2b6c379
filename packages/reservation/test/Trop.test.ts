/**
 * The trop features of the registry on every backend: migrate in one transaction, cleanup on
 * exhaustion inside the reserving transaction, fine-grained change control and dry runs; and the
 * layered YAML config (errors name the file and the key).
 */
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { describe, expect, it, layer } from "@effect/vitest"
import { ProjectConfig, Reservation } from "@keel/reservation"
import { TestDatabase } from "@keel/testkit"
import { Effect, Layer, TestClock } from "effect"
import {
  countInRange,
  freshDirectory,
  rangesFrom,
  layer as registryLayer,
  removeDirectory,
  snapshot
} from "./support/ReservationTest.js"

const Reservations = Reservation.Reservations

TestDatabase.describeEach("Reservation, trop features", (kind) => {
  const freshRange = rangesFrom(14000)

  layer(registryLayer(kind), { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("migrate moves a path's reservations (recursively) with their ports, in one step", () =>
      Effect.gen(function* () {
        const registry = yield* Reservations
        const from = yield* freshDirectory("migrate-from")
        const to = yield* freshDirectory("migrate-to")
        const child = join(from, "child")
        mkdirSync(child)
        const range = freshRange(5)
        const web = yield* registry.reserve({ path: from, cwd: from, tag: "web", range })
        const api = yield* registry.reserve({ path: child, cwd: child, tag: "api", range })
        const dry = yield* registry.migrate({ from, to, recursive: true, dryRun: true })
        expect(dry.moved.map((entry) => entry.reservation.path).sort()).toEqual([to, join(to, "child")])
        expect((yield* registry.list({ pathPrefix: to })).length).toBe(0)
        const done = yield* registry.migrate({ from, to, recursive: true })
        expect(done.moved.length).toBe(2)
        const moved = yield* registry.list({ pathPrefix: to })
        expect(moved.map((r) => [r.path, r.tag, r.port])).toEqual([
          [to, "web", web.reservation.port],
          [join(to, "child"), "api", api.reservation.port]
        ])
        expect((yield* registry.list({ pathPrefix: from })).length).toBe(0)
      })
    )

    it.effect(
      "migrate onto a reserved key is MigrationConflict and changes nothing; overwrite replaces it",
      () =>
        Effect.gen(function* () {
          const registry = yield* Reservations
          const from = yield* freshDirectory("conflict-from")
          const to = yield* freshDirectory("conflict-to")
          const range = freshRange(4)
          const mine = yield* registry.reserve({ path: from, cwd: from, tag: "web", range })
          yield* registry.reserve({ path: to, cwd: to, tag: "web", range })
          const before = yield* snapshot
          const error = yield* Effect.flip(registry.migrate({ from, to }))
          expect(error).toMatchObject({ _tag: "MigrationConflict", path: to, tag: "web" })
          expect(yield* snapshot).toEqual(before)
          const replaced = yield* registry.migrate({ from, to, overwrite: true })
          expect(replaced.replaced.map((r) => r.path)).toEqual([to])
          expect((yield* registry.show({ path: to, tag: "web" })).port).toBe(mine.reservation.port)
          expect(yield* countInRange(range)).toBe(1)
          const same = yield* Effect.flip(registry.migrate({ from: to, to }))
          expect(same).toMatchObject({ _tag: "InvalidRequest", field: "to" })
        })
    )

    it.effect("a dry run reserves nothing; ignoreExclusions hands out an excluded port", () =>
      Effect.gen(function* () {
        const registry = yield* Reservations
        const dir = yield* freshDirectory("dry")
        const range = freshRange(3)
        const dry = yield* registry.reserve({ path: dir, cwd: dir, tag: "web", range, dryRun: true })
        expect(dry).toMatchObject({ outcome: "created", reservation: { port: range.min } })
        expect(yield* countInRange(range)).toBe(0)
        const ignored = yield* registry.reserve({
          path: dir,
          cwd: dir,
          tag: "web",
          range,
          exclude: [range.min],
          ignoreExclusions: true
        })
        expect(ignored.reservation.port).toBe(range.min)
      })
    )

    it.effect("allowProjectChange relabels the project only; the task stays sticky", () =>
      Effect.gen(function* () {
        const registry = yield* Reservations
        const dir = yield* freshDirectory("relabel")
        const range = freshRange(3)
        yield* registry.reserve({ path: dir, cwd: dir, range, project: "a", task: "t" })
        const refused = yield* Effect.flip(registry.reserve({ path: dir, cwd: dir, range, project: "b" }))
        expect(refused).toMatchObject({ _tag: "StickyFieldChanged", field: "project" })
        const changed = yield* registry.reserve({
          path: dir,
          cwd: dir,
          range,
          project: "b",
          allowProjectChange: true
        })
        expect(changed.reservation.project).toBe("b")
        const task = yield* Effect.flip(
          registry.reserve({ path: dir, cwd: dir, range, task: "u", allowProjectChange: true })
        )
        expect(task).toMatchObject({ _tag: "StickyFieldChanged", field: "task" })
        const moved = yield* registry.reserve({
          path: dir,
          cwd: dir,
          range,
          preferred: range.max,
          overwrite: true
        })
        expect(moved).toMatchObject({ outcome: "moved", reservation: { port: range.max } })
      })
    )

    it.effect(
      "pruneOnExhaustion frees the ports of a deleted directory inside the reserving transaction",
      () =>
        Effect.gen(function* () {
          const registry = yield* Reservations
          const gone = yield* freshDirectory("prune-gone")
          const dir = yield* freshDirectory("prune-new")
          const range = freshRange(2)
          yield* registry.reserveGroup({
            path: gone,
            cwd: gone,
            range,
            services: [{ tag: "a" }, { tag: "b" }]
          })
          yield* removeDirectory(gone)
          const refused = yield* Effect.flip(registry.reserve({ path: dir, cwd: dir, range }))
          expect(refused._tag).toBe("NoPortAvailable")
          const reserved = yield* registry.reserve({ path: dir, cwd: dir, range, pruneOnExhaustion: true })
          expect(reserved.reservation.port).toBe(range.min)
          expect((yield* registry.list({ pathPrefix: gone })).length).toBe(0)
          expect(yield* countInRange(range)).toBe(1)
        })
    )
  })

  layer(registryLayer(kind), { timeout: 120_000 })((it) => {
    it.effect("expireOnExhaustion removes reservations unused that long, only when the range is full", () =>
      Effect.gen(function* () {
        const registry = yield* Reservations
        const old = yield* freshDirectory("expire-old")
        const dir = yield* freshDirectory("expire-new")
        const range = freshRange(1)
        yield* TestClock.setTime(50_000_000)
        yield* registry.reserve({ path: old, cwd: old, range })
        yield* TestClock.adjust("3 days")
        const refused = yield* Effect.flip(
          registry.reserve({ path: dir, cwd: dir, range, expireOnExhaustion: "7 days" })
        )
        expect(refused._tag).toBe("NoPortAvailable")
        yield* TestClock.adjust("5 days")
        const reserved = yield* registry.reserve({ path: dir, cwd: dir, range, expireOnExhaustion: "7 days" })
        expect(reserved.reservation.port).toBe(range.min)
        expect((yield* registry.list({ pathPrefix: old })).length).toBe(0)
      })
    )
  })
})

const files = Layer.mergeAll(NodeFileSystem.layer, NodePath.layer)

describe("ProjectConfig", () => {
  it.effect(
    "an unknown key, a bad port and a bad variable name are InvalidConfig naming the file and the key",
    () =>
      Effect.gen(function* () {
        const unknown = yield* Effect.flip(ProjectConfig.parse("project: x\nrnage: 1\n", "/p/trop.yaml"))
        expect(unknown).toMatchObject({ _tag: "InvalidConfig", source: "/p/trop.yaml", field: "rnage" })
        const port = yield* Effect.flip(ProjectConfig.parse("ports:\n  min: 70000\n", "/p/trop.yaml"))
        expect(port).toMatchObject({ field: "ports.min" })
        const env = yield* Effect.flip(
          ProjectConfig.parse("reservations:\n  services:\n    web:\n      env: 'A B'\n", "/p/trop.yaml")
        )
        expect(env).toMatchObject({ field: "reservations.services.web.env" })
        const clash = yield* Effect.flip(
          ProjectConfig.parse("reservations:\n  services:\n    a-b: {}\n    A_B: {}\n", "/p/trop.yaml")
        )
        expect(clash).toMatchObject({ field: "reservations.services.A_B.env" })
        const yaml = yield* Effect.flip(ProjectConfig.parse("ports: [\n", "/p/trop.yaml"))
        expect(yaml).toMatchObject({ field: "(file)" })
        const exclusion = yield* Effect.flip(
          ProjectConfig.parse("excluded_ports: ['9..3']\n", "/p/trop.yaml")
        )
        expect(exclusion).toMatchObject({ field: "excluded_ports[0]" })
      })
  )

  it.effect("layers: user, then the project file found upward, then trop.local.yaml, then TROP_*", () =>
    Effect.gen(function* () {
      const root = join(process.env.TMPDIR ?? "/tmp", `keel-trop-layers-${process.pid}-${Date.now()}`)
      const deep = join(root, "project", "src", "deep")
      mkdirSync(deep, { recursive: true })
      const user = join(root, "config.yaml")
      writeFileSync(user, "ports: { min: 6000, max: 6100 }\nexcluded_ports: [6001]\nproject: from-user\n")
      writeFileSync(
        join(root, "project", "trop.yaml"),
        "project: app\nexcluded_ports: ['6005..6007']\nreservations:\n  services:\n    web: { offset: 0 }\n    api-server: { offset: 1, env: API }\n"
      )
      writeFileSync(join(root, "project", "trop.local.yaml"), "ports: { min: 6200, max_offset: 10 }\n")
      const layers = yield* ProjectConfig.discover(deep, user)
      expect(layers.project?.dir).toBe(join(root, "project"))
      const effective = yield* ProjectConfig.resolve(layers, { TROP_TASK: "t1" })
      expect(effective).toMatchObject({ project: "app", task: "t1", range: { min: 6200, max: 6210 } })
      expect(effective.exclude).toEqual([
        { min: 6001, max: 6001 },
        { min: 6005, max: 6007 }
      ])
      const fromEnv = yield* ProjectConfig.resolve(layers, { TROP_PROJECT: "env-project" })
      expect(fromEnv.project).toBe("env-project")
      const group = yield* ProjectConfig.groupOf(
        layers.project?.document.reservations ?? { services: {} },
        "f"
      )
      expect(group.services.map((service) => [service.tag, service.env])).toEqual([
        ["web", "WEB"],
        ["api-server", "API"]
      ])
      const badEnv = yield* Effect.flip(ProjectConfig.resolve(layers, { TROP_DISABLE_AUTOPRUNE: "maybe" }))
      expect(badEnv).toMatchObject({ _tag: "InvalidConfig", field: "TROP_DISABLE_AUTOPRUNE" })
    }).pipe(Effect.provide(files))
  )
})
