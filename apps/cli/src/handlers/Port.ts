/**
 * The programs of `keel port …` (loaded on demand): each provides only the database and the
 * reservation registry, resolves paths against the working directory and passes it as `cwd`.
 */
import { existsSync, statSync } from "node:fs"
import { dirname, resolve } from "node:path"
import * as ProjectConfig from "@keel/reservation/ProjectConfig"
import * as Reservation from "@keel/reservation/Reservation"
import * as Schemas from "@keel/reservation/Schemas"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type {
  CleanupInput,
  ListInput,
  ReleaseInput,
  ReserveControl,
  ReserveGroupInput,
  ReserveInput,
  ShowInput
} from "../commands/Port.js"
import * as Layers from "../Layers.js"
import * as Output from "../Output.js"
import * as Parse from "../Parse.js"
import * as Formats from "./port/Formats.js"
import * as Group from "./port/Group.js"
import * as Settings from "./port/Settings.js"
import * as Trop from "./port/Trop.js"

const encodeReservation = Schema.encodeSync(Schemas.Reservation)

/** A reservation as JSON: timestamps as ISO-8601 text, `tag`/`project`/`task`/`expiresAt` null when unset. */
export const reservationDocument = (reservation: Schemas.Reservation) => encodeReservation(reservation)

const iso = (value: DateTime.Utc): string => DateTime.formatIso(value)

const columns = ["PORT", "TAG", "PATH", "PROJECT", "TASK", "LAST USED", "EXPIRES"]

/** The longest path the table prints whole unless `--show-full-paths`. */
const shortPath = 48

const shorten = (path: string, full: boolean): string =>
  full || path.length <= shortPath ? path : `…${path.slice(path.length - shortPath + 1)}`

/** The human table of reservations (long paths shortened from the left unless `fullPaths`). */
export const reservationTable = (
  reservations: ReadonlyArray<Schemas.Reservation>,
  fullPaths = true
): string =>
  Output.table(
    columns,
    reservations.map((reservation) => [
      String(reservation.port),
      Output.orDash(reservation.tag),
      shorten(reservation.path, fullPaths),
      Output.orDash(reservation.project),
      Output.orDash(reservation.task),
      iso(reservation.lastUsedAt),
      reservation.expiresAt === null ? "-" : iso(reservation.expiresAt)
    ])
  )

const withRegistry = <E, R>(program: Effect.Effect<void, E, R>) =>
  Effect.provide(program, Layers.reservations)

/** `keel port reserve`: the flags over the config layers (see `port/Settings.ts`). */
export const reserve = (input: ReserveInput & ReserveControl) =>
  withRegistry(
    Effect.gen(function* () {
      const { effective } = yield* Settings.load()
      const ttl = yield* Parse.optionalDuration("ttl", input.ttl)
      const registry = yield* Reservation.Reservations
      const reserved = yield* registry.reserve({
        ...Settings.allocationFields(effective, input, ttl),
        path: Settings.pathOf(effective, input.path),
        tag: Option.getOrUndefined(input.tag),
        preferred: Option.getOrUndefined(input.preferred)
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

const isConfigFile = (arg: string): boolean =>
  /\.ya?ml$/i.test(arg) || (existsSync(arg) && statSync(arg).isFile())

/**
 * `keel port reserve-group`: the services given as arguments, or (one argument naming a YAML file)
 * the reservations of that trop.yaml, for the file's directory.
 */
export const reserveGroup = (input: ReserveGroupInput) =>
  withRegistry(
    Effect.gen(function* () {
      const loaded = yield* Settings.load()
      const [first] = input.services
      const format = Option.getOrElse(input.format, () => "human" as const)
      if (input.services.length === 1 && first !== undefined && isConfigFile(first)) {
        const file = resolve(process.cwd(), first)
        const document = yield* Effect.provide(ProjectConfig.load(file), Settings.files)
        return yield* Trop.reserveProjectGroup({ ...input, shell: input.shell }, format, loaded, {
          file,
          document,
          dir: dirname(file)
        })
      }
      const services = yield* Effect.forEach(input.services, (spec) => Parse.service(spec))
      const ttl = yield* Parse.optionalDuration("ttl", input.ttl)
      const registry = yield* Reservation.Reservations
      const group = yield* registry.reserveGroup({
        ...Settings.allocationFields(loaded.effective, input, ttl),
        path: Settings.pathOf(loaded.effective, input.path),
        services,
        base: Option.getOrUndefined(input.base)
      })
      if (Option.isSome(input.format)) {
        return yield* Group.print(
          format,
          input.shell,
          group.path,
          group.reservations.map((reserved) => ({
            reserved,
            env:
              reserved.reservation.tag === null
                ? undefined
                : ProjectConfig.defaultEnv(reserved.reservation.tag)
          })),
          input.dryRun
        )
      }
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
        path: Settings.pathOf((yield* Settings.load()).effective, input.path),
        cwd: process.cwd(),
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
        pathPrefix: Option.getOrUndefined(
          Option.map(input.pathPrefix, (prefix) => resolve(process.cwd(), prefix))
        ),
        project: Option.getOrUndefined(input.project),
        tag: Option.getOrUndefined(input.tag)
      })
      const documents = reservations.map((reservation) => reservationDocument(reservation))
      const format =
        Option.getOrUndefined(input.format) ?? (yield* Settings.load()).effective.outputFormat ?? "table"
      if (format === "json")
        return yield* Output.result({ reservations: documents }, () =>
          Output.json({ reservations: documents })
        )
      if (format === "csv" || format === "tsv") {
        const rows = documents.map((d) => [
          String(d.port),
          d.tag ?? "",
          d.path,
          d.project ?? "",
          d.task ?? "",
          d.lastUsedAt,
          d.expiresAt ?? ""
        ])
        return yield* Output.result({ reservations: documents }, () =>
          Formats.delimited(format, ["port", "tag", "path", "project", "task", "last_used", "expires"], rows)
        )
      }
      yield* Output.result({ reservations: documents }, () =>
        reservations.length === 0 ? "" : reservationTable(reservations, input.showFullPaths)
      )
    })
  )

/** `keel port show`. */
export const show = (input: ShowInput) =>
  withRegistry(
    Effect.gen(function* () {
      const { effective } = yield* Settings.load()
      const registry = yield* Reservation.Reservations
      const reservation = yield* Option.match(input.port, {
        onNone: () =>
          registry.show({
            path: Settings.pathOf(effective, input.path),
            tag: Option.getOrUndefined(input.tag)
          }),
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
