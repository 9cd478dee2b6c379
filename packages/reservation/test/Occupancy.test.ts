import * as net from "node:net"
import { describe, expect, it } from "@effect/vitest"
import { Occupancy } from "@keel/reservation"
import { Duration, Effect } from "effect"

const timeout = Duration.seconds(2)

/** A listening socket on `host` at an OS-chosen port, closed with the scope. */
const listen = (host: string) =>
  Effect.map(
    Effect.acquireRelease(
      Effect.async<net.Server>((resume) => {
        const server = net.createServer()
        server.once("error", (error) => resume(Effect.die(error)))
        server.listen({ port: 0, host }, () => resume(Effect.succeed(server)))
      }),
      (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
    ),
    (server) => {
      const address = server.address()
      return typeof address === "object" && address !== null ? address.port : -1
    }
  )

/** A port that was free a moment ago: bound on 127.0.0.1 and ::1 by nobody. */
const freePort = Effect.scoped(listen("127.0.0.1"))

describe("Occupancy", () => {
  it.scoped("a listener on 127.0.0.1 occupies the port for a 127.0.0.1 probe, not for a ::1 one", () =>
    Effect.gen(function* () {
      const port = yield* listen("127.0.0.1")
      expect(yield* Occupancy.probe(port, { hosts: ["127.0.0.1"], timeout })).toBe(true)
      expect(yield* Occupancy.probe(port, { hosts: ["::1"], timeout })).toBe(false)
      expect(yield* Occupancy.probe(port, { hosts: ["127.0.0.1", "::1"], timeout })).toBe(true)
    })
  )

  it.scoped("a listener on ::1 occupies the port for a ::1 probe", () =>
    Effect.gen(function* () {
      const port = yield* listen("::1")
      expect(yield* Occupancy.probe(port, { hosts: ["::1"], timeout })).toBe(true)
      expect(yield* Occupancy.probe(port, { hosts: ["127.0.0.1", "::1"], timeout })).toBe(true)
    })
  )

  it.scoped("a listener on the wildcard address is seen by a loopback probe", () =>
    Effect.gen(function* () {
      const port = yield* listen("0.0.0.0")
      expect(yield* Occupancy.probe(port, { hosts: ["127.0.0.1"], timeout })).toBe(true)
    })
  )

  it.effect("a free port is free, and probing it leaves nothing bound", () =>
    Effect.gen(function* () {
      const port = yield* freePort
      for (let round = 0; round < 50; round++) {
        expect(yield* Occupancy.probe(port, { hosts: ["127.0.0.1", "::1"], timeout })).toBe(false)
      }
      // Every probe socket was closed: the port can be listened on (exclusively) right away.
      const again = yield* Effect.scoped(
        Effect.async<boolean>((resume) => {
          const server = net.createServer()
          server.once("error", () => resume(Effect.succeed(false)))
          server.listen({ port, host: "127.0.0.1", exclusive: true }, () =>
            server.close(() => resume(Effect.succeed(true)))
          )
        })
      )
      expect(again).toBe(true)
    })
  )

  it.effect("an address this machine does not have proves nothing and is skipped", () =>
    Effect.gen(function* () {
      const port = yield* freePort
      expect(yield* Occupancy.probe(port, { hosts: ["192.0.2.1"], timeout })).toBe(false)
    })
  )

  it.effect("layerFrom answers from its predicate, for tests and callers that know better", () =>
    Effect.gen(function* () {
      const occupancy = yield* Occupancy.Occupancy
      expect(yield* occupancy.isOccupied(4000, { hosts: [], timeout })).toBe(true)
      expect(yield* occupancy.isOccupied(4001, { hosts: [], timeout })).toBe(false)
    }).pipe(Effect.provide(Occupancy.layerFrom((port) => port === 4000)))
  )
})
