/**
 * `Inventory.inspectPort`, what `keel port port-info` shows: the holder of a port and, with a probe,
 * each bind that finds it in use (by protocol and host); `portInfo` (the HTTP view) says the same as
 * one boolean. On SQLite, with a real TCP listener.
 */
import { mkdtempSync, rmSync } from "node:fs"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, expect, layer } from "@effect/vitest"
import { Inventory, Reservation } from "@keel/reservation"
import { Duration, Effect } from "effect"
import { layer as registryLayer } from "./support/ReservationTest.js"

const dir = mkdtempSync(join(tmpdir(), "keel-inspect-port-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** A TCP listener on 127.0.0.1 (an OS-chosen port), closed with the scope. */
const listener = Effect.acquireRelease(
  Effect.async<net.Server>((resume) => {
    const server = net.createServer()
    server.once("error", (error) => resume(Effect.die(error)))
    server.listen({ port: 0, host: "127.0.0.1" }, () => resume(Effect.succeed(server)))
  }),
  (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
).pipe(
  Effect.flatMap((server) => {
    const address = server.address()
    return typeof address === "object" && address !== null
      ? Effect.succeed(address.port)
      : Effect.dieMessage("no TCP address")
  })
)

const tcpOnLoopback = { hosts: ["127.0.0.1"], protocols: ["tcp" as const], timeout: Duration.millis(500) }

layer(registryLayer("sqlite"), { timeout: 60_000, excludeTestServices: true })(
  "Inventory.inspectPort",
  (it) => {
    it.scoped("names the binds that find the port in use, and the holder; unprobed it is null", () =>
      Effect.gen(function* () {
        const registry = yield* Reservation.Reservations
        const port = yield* listener
        const held = yield* registry.reserve({
          path: dir,
          cwd: dir,
          tag: "busy",
          preferred: port,
          range: { min: port, max: port },
          force: true
        })
        const found = yield* Inventory.inspectPort(registry, port, tcpOnLoopback)
        expect(found).toEqual({
          port,
          reservation: held.reservation,
          inUse: [{ protocol: "tcp", host: "127.0.0.1" }]
        })
        expect(yield* Inventory.inspectPort(registry, port, undefined)).toEqual({
          port,
          reservation: held.reservation,
          inUse: null
        })
        const info = yield* Inventory.portInfo(registry, port, { occupancy: true })
        expect(info.occupied).toBe(true)
      })
    )

    it.scoped(
      "an unreserved port with no busy bind: null holder, empty findings; a bad port is InvalidPort",
      () =>
        Effect.gen(function* () {
          const registry = yield* Reservation.Reservations
          const port = yield* listener
          // A port this test owns (its TCP listener holds it), probed over UDP only: nothing uses it there.
          const found = yield* Inventory.inspectPort(registry, port, { ...tcpOnLoopback, protocols: ["udp"] })
          expect(found).toEqual({ port, reservation: null, inUse: [] })
          const error = yield* Effect.flip(Inventory.inspectPort(registry, 70_000, undefined))
          expect(error).toMatchObject({ _tag: "InvalidPort", field: "port" })
        })
    )
  }
)
