/**
 * How trop's occupancy settings (files, environment, flags) become a reserve request's occupancy
 * override and a scan's probe: only what they change is sent, so the registry's configured hosts
 * and timeout stay in force otherwise.
 */
import { ProjectConfig } from "@keel/reservation"
import { Duration, Effect, Option } from "effect"
import { describe, expect, it } from "vitest"
import * as Settings from "../src/handlers/port/Settings.js"

const policy = (changes: Partial<ProjectConfig.OccupancyPolicy> = {}): ProjectConfig.OccupancyPolicy => ({
  ...ProjectConfig.defaultOccupancy,
  ...changes
})

const flags: Settings.AllocationFlags = {
  range: Option.none(),
  exclude: [],
  project: Option.none(),
  task: Option.none(),
  force: false,
  allowUnrelated: false,
  noOccupancyCheck: false
}

const effective = Effect.runSync(ProjectConfig.resolve({}, {}))

describe("occupancy settings of a reserving command", () => {
  it("nothing set sends no override; each flag adds to the layers' policy", () => {
    expect(Settings.allocationFields(effective, flags, undefined).occupancy).toBeUndefined()
    expect(
      Settings.occupancyPolicy(policy({ skipIp6: true }), { skipUdp: true, checkAllInterfaces: true })
    ).toEqual(policy({ skipIp6: true, skipUdp: true, allInterfaces: true }))
  })

  it("a protocol skip sends only protocols; a family skip or every interface sends only hosts", () => {
    expect(Settings.allocationFields(effective, { ...flags, skipUdp: true }, undefined).occupancy).toEqual({
      protocols: ["tcp"]
    })
    expect(Settings.allocationFields(effective, { ...flags, skipTcp: true }, undefined).occupancy).toEqual({
      protocols: ["udp"]
    })
    expect(
      Settings.allocationFields(effective, { ...flags, checkAllInterfaces: true }, undefined).occupancy
    ).toEqual({ hosts: ["127.0.0.1", "0.0.0.0", "::1", "::"] })
    expect(Settings.occupancyOverride(policy({ skipIp4: true, skipTcp: true }))).toEqual({
      hosts: ["::1"],
      protocols: ["udp"]
    })
  })

  it("skipping everything of one kind, or the check, turns it off", () => {
    expect(Settings.occupancyOverride(policy({ skipTcp: true, skipUdp: true }))).toEqual({ enabled: false })
    expect(Settings.occupancyOverride(policy({ skipIp4: true, skipIp6: true }))).toEqual({ enabled: false })
    expect(
      Settings.allocationFields(effective, { ...flags, noOccupancyCheck: true }, undefined).occupancy
    ).toEqual({
      enabled: false
    })
  })

  it("a command that probes by itself binds the policy's hosts and protocols within the timeout", () => {
    const timeout = Duration.millis(300)
    expect(Settings.occupancyProbe(policy({ skipUdp: true, skipIp6: true }), timeout)).toEqual({
      hosts: ["127.0.0.1"],
      protocols: ["tcp"],
      timeout
    })
  })
})
