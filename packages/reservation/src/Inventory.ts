/**
 * Read-only views of the registry that the CLI (`keel port list-projects`, `port-info`) and the
 * HTTP API both answer: its projects with their reservation counts, and what is known of one
 * port. Each is one read of the registry's own methods; nothing here writes.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Occupancy from "./Occupancy.js"
import * as Port from "./Port.js"
import type { Service } from "./Reservation.js"
import type { InvalidPort, ReservationStoreError } from "./ReservationError.js"
import { Label, Reservation } from "./Schemas.js"

/** One project and how many reservations carry it; `project: null` counts those without one. */
export const ProjectSummary = Schema.Struct({
  project: Schema.NullOr(Label),
  reservations: Schema.Int.pipe(Schema.positive())
})

/** One project and how many reservations carry it. */
export type ProjectSummary = typeof ProjectSummary.Type

/** Every project of the registry, each once, sorted by name (no project first). */
export const ProjectList = Schema.Struct({ projects: Schema.Array(ProjectSummary) })

/** Every project of the registry. */
export type ProjectList = typeof ProjectList.Type

/** The projects of `reservations`: each distinct project once with its count, sorted, `null` first. */
export const projectsOf = (reservations: ReadonlyArray<Reservation>): ProjectList => {
  const counts = new Map<Label | null, number>()
  for (const reservation of reservations) {
    counts.set(reservation.project, (counts.get(reservation.project) ?? 0) + 1)
  }
  const projects = [...counts]
    .map(([project, count]) => ({ project, reservations: count }))
    .sort((a, b) =>
      a.project === b.project
        ? 0
        : a.project === null
          ? -1
          : b.project === null
            ? 1
            : a.project < b.project
              ? -1
              : 1
    )
  return { projects }
}

/** The registry's projects (one read of every reservation). */
export const projects = (registry: Service): Effect.Effect<ProjectList, ReservationStoreError> =>
  Effect.map(
    Effect.catchTags(registry.list(), {
      // `list()` without filters validates nothing; these cannot happen.
      InvalidPath: Effect.die,
      InvalidTag: Effect.die,
      InvalidLabel: Effect.die
    }),
    projectsOf
  )

/** What the registry knows of one port, and (when asked) whether it is in use on this host. */
export const PortInfo = Schema.Struct({
  port: Port.Port,
  /** The reservation holding the port, or `null`. */
  reservation: Schema.NullOr(Reservation),
  /**
   * Whether something uses the port on this host, probed as the registry's own allocation probes
   * (its configured hosts, protocols and timeout); `null` when not asked.
   */
  occupied: Schema.NullOr(Schema.Boolean)
})

/** What the registry knows of one port. */
export type PortInfo = typeof PortInfo.Type

/** What `inspectPort` found: the reservation holding the port, and the sockets in use when probed. */
export interface PortFindings {
  readonly port: Port.Port
  readonly reservation: Reservation | null
  /** Every bind of the probe that found the port busy (`Occupancy.isBusy`); `null` when not probed. */
  readonly inUse: ReadonlyArray<Occupancy.InUse> | null
}

/**
 * `port` validated, the reservation holding it (or `null`), and — with a `probe` — every bind of
 * that probe finding the port in use on this host. A bad port is `InvalidPort`; a free, unreserved
 * port is not an error.
 */
export const inspectPort = (
  registry: Service,
  port: number,
  probe: Occupancy.Probe | undefined
): Effect.Effect<PortFindings, InvalidPort | ReservationStoreError> =>
  Effect.gen(function* () {
    const valid = yield* Port.validate(port, "port")
    const found = yield* registry.showPort({ port: valid }).pipe(
      Effect.map(Option.some),
      Effect.catchTag("ReservationNotFound", () => Effect.succeedNone)
    )
    const inUse = probe === undefined ? null : yield* Occupancy.inUse(valid, probe)
    return { port: valid, reservation: Option.getOrNull(found), inUse }
  })

/**
 * `port` validated, the reservation holding it (or `null`), and — with `occupancy` — whether it is
 * in use on this host, probed as the registry's allocations probe. A bad port is `InvalidPort`.
 */
export const portInfo = (
  registry: Service,
  port: number,
  options: { readonly occupancy: boolean }
): Effect.Effect<PortInfo, InvalidPort | ReservationStoreError> => {
  const settings = registry.config.occupancy
  const probe = options.occupancy
    ? { hosts: settings.hosts, protocols: settings.protocols, timeout: settings.timeout }
    : undefined
  return Effect.map(inspectPort(registry, port, probe), (found) => ({
    port: found.port,
    reservation: found.reservation,
    occupied: found.inUse === null ? null : found.inUse.length > 0
  }))
}
