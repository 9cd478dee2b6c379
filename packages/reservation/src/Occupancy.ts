/**
 * Is something on this machine using a port? The registry asks before it hands a port out, so a
 * port some other program already uses (a database, a dev server started by hand, a DNS or
 * metrics daemon on UDP) is skipped. A service so that tests can replace it.
 *
 * As trop does, each probe binds a socket — a TCP listener, a UDP socket, or both — to the port on
 * each configured address and closes it at once. `EADDRINUSE` means occupied — on Linux also when
 * the other socket is on the wildcard address (`0.0.0.0` / `::`), and a probe of a wildcard
 * address sees a socket on any address of its family (`--check-all-interfaces`). IPv6 probes are
 * IPv6-only, so an IPv4 socket never shows through `::`. Binding, unlike connecting or sending,
 * never reaches the other program. An address this machine does not have (no IPv6 loopback)
 * proves nothing and is skipped; any other failure, or no answer within the timeout, counts as
 * occupied: skipping a free port is cheap, handing out a busy one is the bug this check exists
 * to prevent.
 */
import type * as dgram from "node:dgram"
import type * as net from "node:net"
import type { Duration } from "effect"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/** A transport a port can be in use on. */
export type Protocol = "tcp" | "udp"

/** Both transports, trop's default: a port is occupied when either is in use. */
export const allProtocols: ReadonlyArray<Protocol> = ["tcp", "udp"]

/** What to probe. */
export interface Probe {
  /** The addresses to bind on (`127.0.0.1`, `::1`, and `0.0.0.0` / `::` for every interface). */
  readonly hosts: ReadonlyArray<string>
  /** The longest one bind may take (all run at once); past it the port counts as occupied. */
  readonly timeout: Duration.Duration
  /** The transports to bind; absent: TCP and UDP (`allProtocols`). */
  readonly protocols?: ReadonlyArray<Protocol> | undefined
}

/** The occupancy check. */
export interface Service {
  /** True when a socket holds `port` on any protocol and host of `probe` (or a probe could not tell). */
  readonly isOccupied: (port: number, probe: Probe) => Effect.Effect<boolean>
}

/** The occupancy check in context. */
export class Occupancy extends Context.Tag("@keel/reservation/Occupancy")<Occupancy, Service>() {}

/**
 * What one bind showed: `free`; `occupied` (in use, or a failure that cannot tell); `absent` (the
 * address or its family does not exist here, so nothing can be there); `timeout` (no answer in
 * time — counted as occupied).
 */
export type State = "free" | "occupied" | "absent" | "timeout"

/** One bind of a probe and what it showed. */
export interface Finding {
  readonly protocol: Protocol
  readonly host: string
  readonly state: State
}

/** True for the states that keep a port from being handed out. */
export const isBusy = (state: State): boolean => state === "occupied" || state === "timeout"

// The address does not exist on this machine or its family is not supported: no socket can be
// there either.
const absentCodes: ReadonlySet<string> = new Set(["EADDRNOTAVAIL", "EAFNOSUPPORT", "EPROTONOSUPPORT"])

const codeOf = (error: unknown): string =>
  typeof error === "object" && error !== null && "code" in error && typeof error.code === "string"
    ? error.code
    : "UNKNOWN"

const stateOf = (error: unknown): State => (absentCodes.has(codeOf(error)) ? "absent" : "occupied")

/** Resumes once with the state of the first outcome; later errors of the socket are swallowed. */
const once = (resume: (effect: Effect.Effect<State>) => void) => {
  let done = false
  return (state: State) => {
    if (done) return
    done = true
    resume(Effect.succeed(state))
  }
}

const closeServer = (server: net.Server): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    // `close` reports ERR_SERVER_NOT_RUNNING when the bind failed; either way the handle is gone.
    server.close(() => resume(Effect.void))
  })

const closeSocket = (socket: dgram.Socket): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    try {
      socket.close(() => resume(Effect.void))
    } catch {
      // ERR_SOCKET_DGRAM_NOT_RUNNING: already closed, nothing left to release.
      resume(Effect.void)
    }
  })

/**
 * `node:net` and `node:dgram`, loaded by the first probe: a command that probes nothing (a
 * reservation refreshed, a release) does not load them — about 2 ms of a cold start.
 */
const sockets: Effect.Effect<{ readonly net: typeof net; readonly dgram: typeof dgram }> = Effect.promise(
  () => Promise.all([import("node:net"), import("node:dgram")])
).pipe(Effect.map(([net, dgram]) => ({ net, dgram })))

/** True when `host` is an IP address (`net.isIP`); loads `node:net` on first use (see `sockets`). */
export const isAddress = (host: string): Effect.Effect<boolean> =>
  Effect.map(sockets, ({ net }) => net.isIP(host) !== 0)

type Sockets = Effect.Effect.Success<typeof sockets>

/** One TCP listen attempt; the server is closed when the scope ends, also on timeout or interruption. */
const probeTcp = ({ net }: Sockets, port: number, host: string): Effect.Effect<State> =>
  Effect.scoped(
    Effect.flatMap(
      Effect.acquireRelease(
        Effect.sync(() => net.createServer().unref()),
        closeServer
      ),
      (server) =>
        Effect.async<State>((resume) => {
          const settle = once(resume)
          server.on("error", (error) => settle(stateOf(error)))
          server.once("listening", () => settle("free"))
          server.listen({ port, host, exclusive: true, ipv6Only: net.isIPv6(host) })
        })
    )
  )

/** One UDP bind (no `reuseAddr`, so any socket on the port refuses it); closed with the scope. */
const probeUdp = ({ net, dgram }: Sockets, port: number, host: string): Effect.Effect<State> =>
  Effect.scoped(
    Effect.flatMap(
      Effect.acquireRelease(
        Effect.sync(() => {
          const ipv6 = net.isIPv6(host)
          return dgram.createSocket({ type: ipv6 ? "udp6" : "udp4", ipv6Only: ipv6 }).unref()
        }),
        closeSocket
      ),
      (socket) =>
        Effect.async<State>((resume) => {
          const settle = once(resume)
          socket.on("error", (error) => settle(stateOf(error)))
          socket.once("listening", () => settle("free"))
          try {
            socket.bind({ port, address: host, exclusive: true })
          } catch (error) {
            settle(stateOf(error))
          }
        })
    )
  )

const bind = (modules: Sockets, protocol: Protocol, port: number, host: string): Effect.Effect<State> =>
  protocol === "tcp" ? probeTcp(modules, port, host) : probeUdp(modules, port, host)

const families: ReadonlyArray<4 | 6> = [4, 6]

const familyOf = ({ net }: Sockets, host: string): 4 | 6 => (net.isIPv6(host) ? 6 : 4)

/**
 * Every bind of `probe`, each reported with its protocol and host, by protocol, then IPv4 hosts
 * before IPv6 ones. Binds of one protocol and family run one after another — a probe on
 * `127.0.0.1` and one on `0.0.0.0` at once would each see the other — and the groups at once. A
 * bind unanswered within the timeout is `timeout`; each socket is closed before the next bind.
 */
export const inspect = (port: number, probe: Probe): Effect.Effect<ReadonlyArray<Finding>> =>
  Effect.flatMap(sockets, (modules) => {
    const groups = (probe.protocols ?? allProtocols).flatMap((protocol) =>
      families.map((family) => ({
        protocol,
        hosts: probe.hosts.filter((host) => familyOf(modules, host) === family)
      }))
    )
    const bindOne = (protocol: Protocol, host: string): Effect.Effect<Finding> =>
      bind(modules, protocol, port, host).pipe(
        Effect.timeoutTo({
          duration: probe.timeout,
          onTimeout: (): State => "timeout",
          onSuccess: (state) => state
        }),
        Effect.map((state) => ({ protocol, host, state }))
      )
    return Effect.map(
      Effect.forEach(
        groups,
        ({ protocol, hosts }) => Effect.forEach(hosts, (host) => bindOne(protocol, host)),
        { concurrency: "unbounded" }
      ),
      (found) => found.flat()
    )
  })

/** A socket found in use: the protocol and host of a bind that found the port busy. */
export interface InUse {
  readonly protocol: Protocol
  readonly host: string
}

/** The binds of `probe` that found `port` in use or could not tell (see `inspect`). */
export const inUse = (port: number, probe: Probe): Effect.Effect<ReadonlyArray<InUse>> =>
  Effect.map(inspect(port, probe), (findings) =>
    findings.filter((finding) => isBusy(finding.state)).map(({ protocol, host }) => ({ protocol, host }))
  )

/** True when some bind of `probe` found the port in use or could not tell (see `inspect`). */
export const probe = (port: number, settings: Probe): Effect.Effect<boolean> =>
  Effect.map(inUse(port, settings), (found) => found.length > 0)

/** The real check over `node:net` and `node:dgram`. */
export const layer: Layer.Layer<Occupancy> = Layer.succeed(Occupancy, { isOccupied: probe })

/** A check that answers from a fixed predicate: for tests and for callers that know better. */
export const layerFrom = (isOccupied: (port: number) => boolean): Layer.Layer<Occupancy> =>
  Layer.succeed(Occupancy, { isOccupied: (port) => Effect.sync(() => isOccupied(port)) })
