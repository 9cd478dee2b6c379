/**
 * The port reservation routes of Keel's HTTP API, with the typed errors each can answer: trop's
 * registry commands (reserve, group, release, list, show, cleanup, migrate, list-projects,
 * port-info). A port's occupancy is probed on the server's host, as the server's own allocations
 * probe it, and only where the server checks occupancy at all (see `PortInfoParams`).
 */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Inventory from "@keel/reservation/Inventory"
import * as Schemas from "@keel/reservation/Schemas"
import * as Schema from "effect/Schema"
import { ReservationErrors } from "./ApiErrors.js"
import { bodyErrors, flag } from "./ApiParams.js"

/** `cwd` is optional over HTTP: without it, the unrelated-path guard compares the path with itself. */
const optionalCwd = { cwd: Schema.optional(Schema.String) }

/** `POST /reservations`. */
export const ReserveBody = Schema.Struct({ ...Schemas.ReserveRequest.fields, ...optionalCwd })

/** `POST /reservations/group`. */
export const GroupBody = Schema.Struct({ ...Schemas.GroupRequest.fields, ...optionalCwd })

/** `POST /reservations/release`. */
export const ReleaseBody = Schema.Struct({ ...Schemas.ReleaseRequest.fields, ...optionalCwd })

/** `{ reservations }`: matching reservations, by path then tag. */
export const ReservationList = Schema.Struct({ reservations: Schema.Array(Schemas.Reservation) })

/**
 * `GET /reservations/ports/{port}/info`: `occupancy=true` also probes whether the port is in use —
 * on the server's host, where the server's allocations probe it. A server whose reservation config
 * turns occupancy off (one registry for many machines: its host's sockets say nothing of theirs)
 * answers `occupied: null`.
 */
export const PortInfoParams = Schema.Struct({ occupancy: flag })

const R = ReservationErrors

/** Errors of every request that allocates ports (each keeps its own status). */
const reserveErrors = Schema.Union(
  R.InvalidPort,
  R.InvalidRange,
  R.InvalidTag,
  R.InvalidLabel,
  R.InvalidPath,
  R.InvalidRequest,
  R.UnrelatedPath,
  R.NoPortAvailable,
  R.PreferredPortReserved,
  R.StickyFieldChanged
)

/** The reservation routes. */
export const ReservationsGroup = HttpApiGroup.make("reservations")
  .add(
    HttpApiEndpoint.post("reserve", "/reservations")
      .setPayload(ReserveBody)
      .addError(bodyErrors)
      .addSuccess(Schemas.Reserved)
      .addError(reserveErrors)
      .annotate(OpenApi.Summary, "Reserve a port for (path, tag): the existing one, else a free one")
  )
  .add(
    HttpApiEndpoint.post("reserveGroup", "/reservations/group")
      .setPayload(GroupBody)
      .addError(bodyErrors)
      .addSuccess(Schemas.GroupReserved)
      .addError(reserveErrors)
      .annotate(OpenApi.Summary, "Reserve a port for every service of a path: all of them, or none")
  )
  .add(
    HttpApiEndpoint.post("release", "/reservations/release")
      .setPayload(ReleaseBody)
      .addError(bodyErrors)
      .addSuccess(Schemas.Released)
      .addError(R.InvalidPath)
      .addError(R.InvalidTag)
      .addError(R.InvalidRequest)
      .addError(R.UnrelatedPath)
      .annotate(OpenApi.Summary, "Release one tag, every tag, or (recursive) everything below a path")
  )
  .add(
    HttpApiEndpoint.get("list", "/reservations")
      .setUrlParams(Schemas.ListRequest)
      .addSuccess(ReservationList)
      .addError(R.InvalidPath)
      .addError(R.InvalidTag)
      .addError(R.InvalidLabel)
      .annotate(OpenApi.Summary, "Reservations matching every given filter")
  )
  .add(
    HttpApiEndpoint.get("show", "/reservations/show")
      .setUrlParams(Schemas.ShowRequest)
      .addSuccess(Schemas.Reservation)
      .addError(R.InvalidPath)
      .addError(R.InvalidTag)
      .addError(R.ReservationNotFound)
      .annotate(OpenApi.Summary, "The reservation of one (path, tag)")
  )
  .add(
    HttpApiEndpoint.get(
      "showPort"
    )`/reservations/ports/${HttpApiSchema.param("port", Schema.NumberFromString)}`
      .addSuccess(Schemas.Reservation)
      .addError(R.InvalidPort)
      .addError(R.ReservationNotFound)
      .annotate(OpenApi.Summary, "The reservation holding one port")
  )
  .add(
    HttpApiEndpoint.get(
      "portInfo"
    )`/reservations/ports/${HttpApiSchema.param("port", Schema.NumberFromString)}/info`
      .setUrlParams(PortInfoParams)
      .addSuccess(Inventory.PortInfo)
      .addError(R.InvalidPort)
      .annotate(
        OpenApi.Summary,
        "One port: the reservation holding it or null, and (asked) whether it is in use"
      )
      .annotate(
        OpenApi.Description,
        "occupancy=true probes the port on the server's host, as the server's allocations do; a server " +
          "whose reservation config has occupancy.enabled false answers occupied: null"
      )
  )
  .add(
    HttpApiEndpoint.get("projects", "/reservations/projects")
      .addSuccess(Inventory.ProjectList)
      .annotate(OpenApi.Summary, "Every project of the registry with its number of reservations")
  )
  .add(
    HttpApiEndpoint.post("migrate", "/reservations/migrate")
      .setPayload(Schemas.MigrateRequest)
      .addError(bodyErrors)
      .addSuccess(Schemas.Migrated)
      .addError(R.InvalidPath)
      .addError(R.InvalidRequest)
      .addError(R.MigrationConflict)
      .annotate(
        OpenApi.Summary,
        "Move a path's reservations (recursive: and those below it) to another path, keeping their ports; all or none"
      )
  )
  .add(
    HttpApiEndpoint.post("cleanup", "/reservations/cleanup")
      .setPayload(Schemas.CleanupRequest)
      .addError(bodyErrors)
      .addSuccess(Schemas.CleanupReport)
      .addError(R.InvalidRequest)
      .annotate(OpenApi.Summary, "Remove expired, orphaned or unused reservations (dryRun reports only)")
  )
  .addError(R.ReservationStoreError)
  .annotate(OpenApi.Description, "Port reservations keyed by (path, tag) that two processes never share")
