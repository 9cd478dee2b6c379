import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { afterAll, describe, expect, it, layer } from "@effect/vitest"
import { Reservation, ReservationConfig } from "@keel/reservation"
import { TestDatabase } from "@keel/testkit"
import { ConfigProvider, Duration, Effect, Layer } from "effect"

const directory = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "keel-reservation-config-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

const writeConfig = (dir: string, text: string) =>
  Effect.sync(() => {
    const file = join(dir, "reservation.json")
    writeFileSync(file, text)
    return file
  })

describe("ReservationConfig", () => {
  it.effect(
    "an empty document is the defaults: 5000-7000, nothing excluded, TCP probed on both loopbacks",
    () =>
      Effect.gen(function* () {
        const config = yield* ReservationConfig.decode({})
        expect(config).toEqual(ReservationConfig.defaults)
        expect(config.range).toEqual({ min: 5000, max: 7000 })
        expect(config.occupancy.hosts).toEqual(["127.0.0.1", "::1"])
      })
  )

  it.scoped("a config file sets the range, exclusions and occupancy", () =>
    Effect.gen(function* () {
      const dir = yield* directory
      const file = yield* writeConfig(
        dir,
        JSON.stringify({
          range: "8000-8100",
          exclude: [8001, "8010-8019", { min: 8050, max: 8050 }],
          occupancy: { enabled: false, hosts: ["0.0.0.0"], timeoutMs: 40 }
        })
      )
      const config = yield* ReservationConfig.load(file)
      expect(config.range).toEqual({ min: 8000, max: 8100 })
      expect(config.exclude).toEqual([
        { min: 8001, max: 8001 },
        { min: 8010, max: 8019 },
        { min: 8050, max: 8050 }
      ])
      expect(config.occupancy).toEqual({ enabled: false, hosts: ["0.0.0.0"], timeout: Duration.millis(40) })
    }).pipe(Effect.provide(NodeFileSystem.layer))
  )

  it.effect("invalid config is InvalidConfig naming the field", () =>
    Effect.gen(function* () {
      const cases = [
        [{ rnage: "1-2" }, "rnage"],
        [{ range: true }, "range"],
        [{ range: { min: 0, max: 10 } }, "range.min"],
        [{ range: "9000-8000" }, "range"],
        [{ exclude: [80, 70000] }, "exclude[1]"],
        [{ exclude: ["30-20"] }, "exclude[0]"],
        [{ occupancy: { hosts: ["127.0.0.1", "localhost"] } }, "occupancy.hosts[1]"],
        [{ occupancy: { hosts: [] } }, "occupancy.hosts"],
        [{ occupancy: { timeoutMs: 0 } }, "occupancy.timeoutMs"],
        [{ occupancy: { enabled: "yes" } }, "occupancy.enabled"],
        [{ occupancy: { probe: true } }, "occupancy.probe"],
        [[1, 2], "(root)"]
      ] as const
      for (const [document, field] of cases) {
        const error = yield* Effect.flip(ReservationConfig.decode(document, "test.json"))
        expect(error, JSON.stringify(document)).toMatchObject({
          _tag: "InvalidConfig",
          field,
          source: "test.json"
        })
        expect(error.message).toContain(field)
      }
    })
  )

  it.scoped("malformed JSON and a missing file are InvalidConfig about the file", () =>
    Effect.gen(function* () {
      const dir = yield* directory
      const file = yield* writeConfig(dir, '{ "range": "5000-6000", }')
      expect(yield* Effect.flip(ReservationConfig.load(file))).toMatchObject({
        _tag: "InvalidConfig",
        field: "(file)",
        source: file
      })
      const missing = join(dir, "absent.json")
      expect(yield* Effect.flip(ReservationConfig.load(missing))).toMatchObject({
        _tag: "InvalidConfig",
        field: "(file)",
        source: missing
      })
    }).pipe(Effect.provide(NodeFileSystem.layer))
  )

  it.scoped("KEEL_RESERVATION_CONFIG names the file; unset means the defaults", () =>
    Effect.gen(function* () {
      const dir = yield* directory
      const file = yield* writeConfig(dir, JSON.stringify({ range: { min: 9000, max: 9009 } }))
      const fromFile = yield* ReservationConfig.fromEnvironment.pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["KEEL_RESERVATION_CONFIG", file]])))
      )
      expect(fromFile.range).toEqual({ min: 9000, max: 9009 })
      const unset = yield* ReservationConfig.fromEnvironment.pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map()))
      )
      expect(unset).toEqual(ReservationConfig.defaults)
    }).pipe(Effect.provide(NodeFileSystem.layer))
  )
})

const configDir = mkdtempSync(join(tmpdir(), "keel-reservation-layer-config-"))
const configFile = join(configDir, "reservation.json")
writeFileSync(
  configFile,
  JSON.stringify({ range: "12600-12609", exclude: ["12600-12604"], occupancy: { enabled: false } })
)

describe("Reservation.layerConfig", () => {
  afterAll(() => rmSync(configDir, { recursive: true, force: true }))

  layer(
    Layer.provideMerge(
      Reservation.layerConfig.pipe(
        Layer.provide(
          Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["KEEL_RESERVATION_CONFIG", configFile]])))
        )
      ),
      TestDatabase.layer("sqlite")
    ),
    { timeout: 60_000, excludeTestServices: true }
  )((it) => {
    it.effect("the registry built from the environment uses the file's range and exclusions", () =>
      Effect.gen(function* () {
        const registry = yield* Reservation.Reservations
        expect(registry.config.occupancy.enabled).toBe(false)
        const reserved = yield* registry.reserve({ path: configDir, cwd: configDir })
        expect(reserved.reservation.port).toBe(12605)
      })
    )
  })
})
