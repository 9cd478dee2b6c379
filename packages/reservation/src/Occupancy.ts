/**
 * Is something on this machine listening on a TCP port? The registry asks before it hands a port
 * out, so a port some other program already uses (a database, a dev server started by hand) is
 * skipped. A service so that tests can replace it.
 *
 * The probe binds a listening socket to the port on each configured address and closes it at
 * once. `EADDRINUSE` means occupied — on Linux also when the listener is on the wildcard address
 * (`0.0.0.0` / `::`). Binding, unlike connecting, never reaches the other program. An address
 * this machine does not have (no IPv6 loopback) proves nothing and is skipped; any other failure,
 * or no answer within the timeout, counts as occupied: skipping a free port is cheap, handing out
 * a busy one is the bug this check exists to prevent.
 */
import * as net from "node:net"
import { Context, type Duration, Effect, Layer } from "effect"

/** What to probe. */
export interface Probe {
  readonly hosts: ReadonlyArray<string>
  readonly timeout: Duration.Duration
}

/** The occupancy check. */
export interface Service {
  /** True when a TCP listener holds `port` on any of `probe.hosts` (or a probe could not tell). */
  readonly isOccupied: (port: number, probe: Probe) => Effect.Effect<boolean>
}

/** The occupancy check in context. */
export class Occupancy extends Context.Tag("@keel/reservation/Occupancy")<Occupancy, Service>() {}

/** What a bind attempt on one address showed. */
type HostState = "free" | "occupied" | "absent"

// The address does not exist on this machine or its family is not supported: no listener can be
// there either.
const absentCodes: ReadonlySet<string> = new Set(["EADDRNOTAVAIL", "EAFNOSUPPORT", "EPROTONOSUPPORT"])

const codeOf = (error: unknown): string =>
  typeof error === "object" && error !== null && "code" in error && typeof error.code === "string"
    ? error.code
    : "UNKNOWN"

const closeServer = (server: net.Server): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    // `close` reports ERR_SERVER_NOT_RUNNING when the bind failed; either way the handle is gone.
    server.close(() => resume(Effect.void))
  })

/** One bind attempt; the socket is closed when the scope ends, also on timeout or interruption. */
const probeHost = (port: number, host: string): Effect.Effect<HostState> =>
  Effect.scoped(
    Effect.flatMap(
      Effect.acquireRelease(
        Effect.sync(() => net.createServer().unref()),
        closeServer
      ),
      (server) =>
        Effect.async<HostState>((resume) => {
          server.once("error", (error) => {
            resume(Effect.succeed(absentCodes.has(codeOf(error)) ? "absent" : "occupied"))
          })
          server.once("listening", () => resume(Effect.succeed("free")))
          server.listen({ port, host, exclusive: true })
        })
    )
  )

/** Probes every host at once; occupied as soon as one says so, or when the timeout passes. */
export const probe = (port: number, { hosts, timeout }: Probe): Effect.Effect<boolean> =>
  Effect.forEach(hosts, (host) => probeHost(port, host), { concurrency: "unbounded" }).pipe(
    Effect.map((states) => states.includes("occupied")),
    Effect.timeoutTo({ duration: timeout, onTimeout: () => true, onSuccess: (occupied) => occupied })
  )

/** The real check over `node:net`. */
export const layer: Layer.Layer<Occupancy> = Layer.succeed(Occupancy, { isOccupied: probe })

/** A check that answers from a fixed predicate: for tests and for callers that know better. */
export const layerFrom = (isOccupied: (port: number) => boolean): Layer.Layer<Occupancy> =>
  Layer.succeed(Occupancy, { isOccupied: (port) => Effect.sync(() => isOccupied(port)) })
