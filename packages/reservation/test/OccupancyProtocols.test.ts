/**
 * Occupancy as trop checks it: TCP and UDP, IPv4 and IPv6 (IPv6-only probes), loopback or every
 * interface, and the skip settings from trop.yaml and the environment — with real sockets held by
 * the test, through `Occupancy.probe`/`inspect` and through a real reserve.
 */
import * as dgram from "node:dgram"
import * as net from "node:net"
import { networkInterfaces } from "node:os"
import { describe, expect, it, layer } from "@effect/vitest"
import { Occupancy, ProjectConfig, Reservation, ReservationConfig } from "@keel/reservation"
import { Duration, Effect, Either } from "effect"
import { freshDirectory, rangesFrom, layer as registryLayer } from "./support/ReservationTest.js"

const timeout = Duration.seconds(2)

type Socket = { readonly close: (done: () => void) => void; readonly address: () => unknown }

const portOf = (socket: Socket): number => {
  const address = socket.address()
  return typeof address === "object" &&
    address !== null &&
    "port" in address &&
    typeof address.port === "number"
    ? address.port
    : -1
}

const hold = <S extends Socket>(open: (resume: (effect: Effect.Effect<S>) => void) => void) =>
  Effect.map(
    Effect.acquireRelease(Effect.async<S>(open), (socket) =>
      Effect.async<void>((resume) => socket.close(() => resume(Effect.void)))
    ),
    portOf
  )

/** A UDP socket bound on `host` (at `port`, or one the OS picks), closed with the scope; its port. */
const holdUdp = (host: string, port = 0) =>
  hold<dgram.Socket>((resume) => {
    const socket = dgram.createSocket({
      type: net.isIPv6(host) ? "udp6" : "udp4",
      ipv6Only: net.isIPv6(host)
    })
    socket.once("error", (error) => resume(Effect.die(error)))
    socket.bind(port, host, () => resume(Effect.succeed(socket)))
  })

/** A TCP listener on `host` (at `port`, or one the OS picks), closed with the scope; its port. */
const holdTcp = (host: string, port = 0) =>
  hold<net.Server>((resume) => {
    const server = net.createServer()
    server.once("error", (error) => resume(Effect.die(error)))
    server.listen({ port, host, ipv6Only: net.isIPv6(host) }, () => resume(Effect.succeed(server)))
  })

/** Why `host` cannot be used here (a real bind says), or undefined when it can. */
const unusable = (host: string): Promise<string | undefined> =>
  new Promise((resolve) => {
    const server = net.createServer()
    server.once("error", (error) =>
      resolve(`binding ${host} failed (${"code" in error ? String(error.code) : error.message})`)
    )
    server.listen({ port: 0, host }, () => server.close(() => resolve(undefined)))
  })

const noIpv6Loopback = await unusable("::1")
/** An IPv4 address of this machine other than a loopback one: a socket there is not on 127.0.0.1. */
const outerAddress =
  Object.values(networkInterfaces())
    .flat()
    .find((entry) => entry !== undefined && entry.family === "IPv4" && !entry.internal)?.address ??
  "127.0.0.2"
const noOuterAddress = await unusable(outerAddress)

if (noIpv6Loopback !== undefined) console.warn(`IPv6 occupancy tests skipped: ${noIpv6Loopback}`)
if (noOuterAddress !== undefined) console.warn(`every-interface occupancy tests skipped: ${noOuterAddress}`)

const policy = (changes: Partial<ProjectConfig.OccupancyPolicy> = {}): ProjectConfig.OccupancyPolicy => ({
  ...ProjectConfig.defaultOccupancy,
  ...changes
})

/** The probe of a trop policy, as the CLI builds it. */
const probeOf = (changes: Partial<ProjectConfig.OccupancyPolicy> = {}): Occupancy.Probe => ({
  hosts: ProjectConfig.hostsOf(policy(changes)),
  protocols: ProjectConfig.protocolsOf(policy(changes)),
  timeout
})

describe("Occupancy over TCP and UDP", () => {
  it.scoped(
    "a UDP socket on 127.0.0.1 occupies the port for a UDP probe (the default), not for a TCP-only one",
    () =>
      Effect.gen(function* () {
        const port = yield* holdUdp("127.0.0.1")
        expect(yield* Occupancy.probe(port, { hosts: ["127.0.0.1"], timeout })).toBe(true)
        expect(yield* Occupancy.probe(port, { hosts: ["127.0.0.1"], protocols: ["udp"], timeout })).toBe(true)
        expect(yield* Occupancy.probe(port, { hosts: ["127.0.0.1"], protocols: ["tcp"], timeout })).toBe(
          false
        )
        expect(yield* Occupancy.probe(port, probeOf())).toBe(true)
        expect(yield* Occupancy.probe(port, probeOf({ skipUdp: true }))).toBe(false)
      })
  )

  it.scoped("a TCP listener is not seen by a UDP-only probe (skip_tcp)", () =>
    Effect.gen(function* () {
      const port = yield* holdTcp("127.0.0.1")
      expect(yield* Occupancy.probe(port, probeOf())).toBe(true)
      expect(yield* Occupancy.probe(port, probeOf({ skipTcp: true }))).toBe(false)
    })
  )

  it.scoped("inspect names the protocol and the address that found the port in use", () =>
    Effect.gen(function* () {
      const port = yield* holdUdp("127.0.0.1")
      const findings = yield* Occupancy.inspect(port, { hosts: ["127.0.0.1"], timeout })
      expect(findings).toEqual([
        { protocol: "tcp", host: "127.0.0.1", state: "free" },
        { protocol: "udp", host: "127.0.0.1", state: "occupied" }
      ])
    })
  )

  it.scoped.skipIf(noIpv6Loopback !== undefined)(
    "a UDP socket on ::1 is seen by an IPv6 probe and not by an IPv4-only one (skip_ip6 hides it)",
    () =>
      Effect.gen(function* () {
        const port = yield* holdUdp("::1")
        expect(yield* Occupancy.probe(port, probeOf())).toBe(true)
        expect(yield* Occupancy.probe(port, { hosts: ["::1"], protocols: ["udp"], timeout })).toBe(true)
        expect(yield* Occupancy.probe(port, probeOf({ skipIp6: true }))).toBe(false)
        expect(yield* Occupancy.probe(port, probeOf({ skipUdp: true }))).toBe(false)
      })
  )

  it.scoped.skipIf(noIpv6Loopback !== undefined)(
    "IPv6 probes are IPv6-only: IPv4 sockets on 0.0.0.0 do not show through :: (skip_ip4 hides them)",
    () =>
      Effect.gen(function* () {
        const port = yield* holdTcp("0.0.0.0")
        yield* holdUdp("0.0.0.0", port)
        expect(yield* Occupancy.probe(port, { hosts: ["::", "::1"], timeout })).toBe(false)
        expect(yield* Occupancy.probe(port, probeOf({ skipIp4: true, allInterfaces: true }))).toBe(false)
        expect(yield* Occupancy.probe(port, probeOf({ allInterfaces: true }))).toBe(true)
      })
  )

  it.scoped.skipIf(noOuterAddress !== undefined)(
    `sockets on ${outerAddress} are missed on loopback and seen with every interface (TCP and UDP)`,
    () =>
      Effect.gen(function* () {
        const tcp = yield* holdTcp(outerAddress)
        expect(yield* Occupancy.probe(tcp, probeOf())).toBe(false)
        expect(yield* Occupancy.probe(tcp, probeOf({ allInterfaces: true }))).toBe(true)
        expect(yield* Occupancy.probe(tcp, probeOf({ allInterfaces: true, skipTcp: true }))).toBe(false)
        const udp = yield* holdUdp(outerAddress)
        expect(yield* Occupancy.probe(udp, probeOf())).toBe(false)
        expect(yield* Occupancy.probe(udp, probeOf({ allInterfaces: true }))).toBe(true)
        expect(yield* Occupancy.probe(udp, probeOf({ allInterfaces: true, skipIp4: true }))).toBe(false)
      })
  )

  it.effect(
    "an address this machine lacks (IPv4 or IPv6) proves nothing for TCP or UDP, and does not fail",
    () =>
      Effect.gen(function* () {
        const port = yield* Effect.scoped(holdTcp("127.0.0.1"))
        const findings = yield* Occupancy.inspect(port, { hosts: ["192.0.2.1", "2001:db8::1"], timeout })
        expect(findings.map((finding) => finding.state)).toEqual(["absent", "absent", "absent", "absent"])
        expect(yield* Occupancy.probe(port, { hosts: ["192.0.2.1", "2001:db8::1"], timeout })).toBe(false)
      })
  )

  it.effect("probing a free port over TCP and UDP leaves nothing bound on either", () =>
    Effect.gen(function* () {
      const port = yield* Effect.scoped(holdUdp("127.0.0.1"))
      for (let round = 0; round < 30; round++) {
        expect(yield* Occupancy.probe(port, { hosts: ["127.0.0.1", "0.0.0.0"], timeout })).toBe(false)
      }
      // Every probe socket was closed: both transports can take the port right away.
      yield* Effect.scoped(Effect.zip(holdUdp("127.0.0.1", port), holdTcp("127.0.0.1", port)))
    })
  )
})

describe("trop's occupancy_check keys", () => {
  const documents = (...texts: ReadonlyArray<string>) =>
    Effect.forEach(texts, (text, index) =>
      Effect.map(ProjectConfig.parse(text, `layer${index}.yaml`), (document) => ({
        file: `layer${index}.yaml`,
        document
      }))
    )

  it.effect("merge key by key across the layers, the environment over them", () =>
    Effect.gen(function* () {
      const [user, project, local] = yield* documents(
        "occupancy_check: { skip_ip6: true, skip_tcp: true }\n",
        "occupancy_check: { skip_udp: true }\n",
        "occupancy_check: { check_all_interfaces: true, skip_tcp: false }\n"
      )
      const layers = { user, project: project && { ...project, dir: "/p" }, local }
      const effective = yield* ProjectConfig.resolve(layers, {})
      expect(effective.occupancy).toEqual(policy({ skipIp6: true, skipUdp: true, allInterfaces: true }))
      expect(ProjectConfig.hostsOf(effective.occupancy)).toEqual(["127.0.0.1", "0.0.0.0"])
      expect(ProjectConfig.protocolsOf(effective.occupancy)).toEqual(["tcp"])
      const overridden = yield* ProjectConfig.resolve(layers, {
        TROP_SKIP_UDP: "false",
        TROP_SKIP_TCP: "1",
        TROP_SKIP_IPV4: "yes",
        TROP_SKIP_IPV6: "0",
        TROP_CHECK_ALL_INTERFACES: "off"
      })
      expect(overridden.occupancy).toEqual(policy({ skipTcp: true, skipIp4: true }))
      expect(ProjectConfig.hostsOf(overridden.occupancy)).toEqual(["::1"])
      expect(ProjectConfig.protocolsOf(overridden.occupancy)).toEqual(["udp"])
      expect(ProjectConfig.probesNothing(overridden.occupancy)).toBe(false)
      expect(ProjectConfig.probesNothing(policy({ skipTcp: true, skipUdp: true }))).toBe(true)
      expect(ProjectConfig.probesNothing(policy({ skipIp4: true, skipIp6: true }))).toBe(true)
    })
  )

  it.effect("a bad TROP_SKIP_UDP is InvalidConfig naming it; a bad key's type names the key", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(ProjectConfig.resolve({}, { TROP_SKIP_UDP: "maybe" }))
      expect(error).toMatchObject({ _tag: "InvalidConfig", source: "environment", field: "TROP_SKIP_UDP" })
      const bad = yield* Effect.flip(ProjectConfig.parse("occupancy_check: { skip_udp: 3 }\n", "trop.yaml"))
      expect(bad).toMatchObject({ _tag: "InvalidConfig", field: "occupancy_check.skip_udp" })
    })
  )
})

describe("the registry's occupancy protocols", () => {
  it.effect("the config file takes protocols; an unknown or empty list is InvalidConfig naming it", () =>
    Effect.gen(function* () {
      const config = yield* ReservationConfig.decode({ occupancy: { protocols: ["udp", "udp"] } })
      expect(config.occupancy.protocols).toEqual(["udp"])
      expect((yield* ReservationConfig.decode({})).occupancy.protocols).toBeUndefined()
      const unknown = yield* Effect.flip(ReservationConfig.decode({ occupancy: { protocols: ["sctp"] } }))
      expect(unknown).toMatchObject({ _tag: "InvalidConfig", field: "occupancy.protocols[0]" })
      const empty = yield* Effect.flip(ReservationConfig.decode({ occupancy: { protocols: [] } }))
      expect(empty).toMatchObject({ _tag: "InvalidConfig", field: "occupancy.protocols" })
    })
  )
})

describe("reserving with UDP checking", () => {
  const freshRange = rangesFrom(18000)

  layer(registryLayer("sqlite"), { timeout: 60_000, excludeTestServices: true })((it) => {
    it.scoped(
      "a port a UDP socket holds is passed over; with protocols [tcp] (skip_udp) it is handed out",
      () =>
        Effect.gen(function* () {
          const registry = yield* Reservation.Reservations
          const dir = yield* freshDirectory("udp-held")
          const range = freshRange(1)
          yield* holdUdp("127.0.0.1", range.min)
          const refused = yield* Effect.either(registry.reserve({ path: dir, cwd: dir, tag: "udp", range }))
          expect(Either.isLeft(refused)).toBe(true)
          const taken = yield* registry.reserve({
            path: dir,
            cwd: dir,
            tag: "tcp-only",
            range,
            occupancy: { protocols: ["tcp"] }
          })
          expect(taken.reservation.port).toBe(range.min)
        })
    )

    it.effect(
      "an empty protocol list is InvalidRequest naming occupancy.protocols, and nothing is written",
      () =>
        Effect.gen(function* () {
          const registry = yield* Reservation.Reservations
          const dir = yield* freshDirectory("no-protocols")
          const range = freshRange(1)
          const error = yield* Effect.flip(
            registry.reserve({ path: dir, cwd: dir, tag: "none", range, occupancy: { protocols: [] } })
          )
          expect(error).toMatchObject({ _tag: "InvalidRequest", field: "occupancy.protocols" })
          expect(yield* registry.list({ pathPrefix: dir })).toEqual([])
        })
    )
  })
})
