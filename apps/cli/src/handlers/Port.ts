/**
 * The programs of `keel port …` (loaded on demand): each provides only the database and the
 * reservation registry, resolves paths against the working directory and passes it as `cwd`.
 */
import { resolve } from "node:path"
import { Reservation, Schemas } from "@keel/reservation"
import { DateTime, Effect, Option, Schema } from "effect"
import type {
  AllocationInput,
  CleanupInput,
  ListInput,
  ReleaseInput,
  ReserveGroupInput,
  ReserveInput,
  ShowInput
} from "../commands/Port.js"
import * as Layers from "../Layers.js"
import * as Output from "../Output.js"
import * as Parse from "../Parse.js"

const cwd = () => process.cwd()

/** An absolute path: the given one resolved against the working directory, or the working directory. */
const absolute = (path: Option.Option<string>): string =>
  Option.match(path, { onNone: cwd, onSome: (given) => resolve(cwd(), given) })

const allocationFields = (input: AllocationInput) =>
  Effect.map(Parse.optionalDuration("ttl", input.ttl), (ttl) => ({
    cwd: cwd(),
    range: Option.getOrUndefined(input.range),
    exclude: input.exclude.length === 0 ? undefined : input.exclude.map(Parse.exclusion),
    project: Option.getOrUndefined(input.project),
    task: Option.getOrUndefined(input.task),
    ttl,
    force: input.force || undefined,
    allowUnrelated: input.allowUnrelated || undefined,
    occupancy: input.noOccupancyCheck ? { enabled: false } : undefined
  }))

const encodeReservation = Schema.encodeSync(Schemas.Reservation)

/** A reservation as JSON: timestamps as ISO-8601 text, `tag`/`project`/`task`/`expiresAt` null when unset. */
export const reservationDocument = (reservation: Schemas.Reservation) => encodeReservation(reservation)

const iso = (value: DateTime.Utc): string => DateTime.formatIso(value)

/** The human table of reservations. */
export const reservationTable = (reservations: ReadonlyArray<Schemas.Reservation>): string =>
  Output.table(
    ["PORT", "TAG", "PATH", "PROJECT", "TASK", "LAST USED", "EXPIRES"],
    reservations.map((reservation) => [
      String(reservation.port),
      Output.orDash(reservation.tag),
      reservation.path,
      Output.orDash(reservation.project),
      Output.orDash(reservation.task),
      iso(reservation.lastUsedAt),
      reservation.expiresAt === null ? "-" : iso(reservation.expiresAt)
    ])
  )

const withRegistry = <E, R>(program: Effect.Effect<void, E, R>) =>
  Effect.provide(program, Layers.reservations)

/** `keel port reserve`. */
export const reserve = (input: ReserveInput) =>
  withRegistry(
    Effect.gen(function* () {
      const registry = yield* Reservation.Reservations
      const reserved = yield* registry.reserve({
        path: absolute(input.path),
        tag: Option.getOrUndefined(input.tag),
        preferred: Option.getOrUndefined(input.preferred),
        ...(yield* allocationFields(input))
      })
      yield* Output.result(
        {
          port: reserved.reservation.port,
          outcome: reserved.outcome,
          reservation: reservationDocument(reserved.reservation)
        },
        () => String(reserved.reservation.port)
      )
    })
  )

/** `keel port reserve-group`. */
export const reserveGroup = (input: ReserveGroupInput) =>
  withRegistry(
    Effect.gen(function* () {
      const services = yield* Effect.forEach(input.services, (spec) => Parse.service(spec))
      const registry = yield* Reservation.Reservations
      const group = yield* registry.reserveGroup({
        path: absolute(input.path),
        services,
        base: Option.getOrUndefined(input.base),
        ...(yield* allocationFields(input))
      })
      yield* Output.result(
        {
          path: group.path,
          reservations: group.reservations.map((reserved) => ({
            tag: reserved.reservation.tag,
            port: reserved.reservation.port,
            outcome: reserved.outcome,
            reservation: reservationDocument(reserved.reservation)
          }))
        },
        () =>
          group.reservations
            .map((reserved) => `${Output.orDash(reserved.reservation.tag)} ${reserved.reservation.port}`)
            .join("\n")
      )
    })
  )

/** `keel port release`. */
export const release = (input: ReleaseInput) =>
  withRegistry(
    Effect.gen(function* () {
      const registry = yield* Reservation.Reservations
      const released = yield* registry.release({
        path: absolute(input.path),
        cwd: cwd(),
        tag: Option.getOrUndefined(input.tag),
        untaggedOnly: input.untaggedOnly || undefined,
        recursive: input.recursive || undefined,
        dryRun: input.dryRun || undefined,
        allowUnrelated: input.allowUnrelated || undefined
      })
      const verb = released.dryRun ? "would release" : "released"
      yield* Output.confirmation(
        {
          dryRun: released.dryRun,
          released: released.released.map((reservation) => reservationDocument(reservation))
        },
        () =>
          released.released.length === 0
            ? "nothing to release"
            : released.released
                .map(
                  (reservation) =>
                    `${verb} ${reservation.port} ${Output.orDash(reservation.tag)} ${Output.singleLine(reservation.path)}`
                )
                .join("\n")
      )
    })
  )

/** `keel port list`. */
export const list = (input: ListInput) =>
  withRegistry(
    Effect.gen(function* () {
      const registry = yield* Reservation.Reservations
      const reservations = yield* registry.list({
        pathPrefix: Option.getOrUndefined(Option.map(input.pathPrefix, (prefix) => resolve(cwd(), prefix))),
        project: Option.getOrUndefined(input.project),
        tag: Option.getOrUndefined(input.tag)
      })
      yield* Output.result(
        { reservations: reservations.map((reservation) => reservationDocument(reservation)) },
        () => (reservations.length === 0 ? "" : reservationTable(reservations))
      )
    })
  )

/** `keel port show`. */
export const show = (input: ShowInput) =>
  withRegistry(
    Effect.gen(function* () {
      const registry = yield* Reservation.Reservations
      const reservation = yield* Option.match(input.port, {
        onNone: () => registry.show({ path: absolute(input.path), tag: Option.getOrUndefined(input.tag) }),
        onSome: (port) => registry.showPort({ port })
      })
      yield* Output.result({ reservation: reservationDocument(reservation) }, () =>
        reservationTable([reservation])
      )
    })
  )

/** `keel port cleanup`. */
export const cleanup = (input: CleanupInput) =>
  withRegistry(
    Effect.gen(function* () {
      const registry = yield* Reservation.Reservations
      const report = yield* registry.cleanup({
        dryRun: input.dryRun || undefined,
        expired: !input.keepExpired,
        missingPaths: !input.keepMissing,
        unusedFor: yield* Parse.optionalDuration("unused-for", input.unusedFor)
      })
      const verb = report.dryRun ? "would remove" : "removed"
      yield* Output.confirmation(
        {
          dryRun: report.dryRun,
          removed: report.removed.map(({ reason, reservation }) => ({
            reason,
            reservation: reservationDocument(reservation)
          }))
        },
        () =>
          report.removed.length === 0
            ? "nothing to clean up"
            : report.removed
                .map(
                  ({ reason, reservation }) =>
                    `${verb} ${reservation.port} ${Output.orDash(reservation.tag)} ${Output.singleLine(reservation.path)} (${reason})`
                )
                .join("\n")
      )
    })
  )
