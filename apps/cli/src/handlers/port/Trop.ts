/**
 * The programs of trop's commands under `keel port` (loaded on demand): every one resolves the
 * config layers (`Settings`) first, so a bad file fails before the database is opened, and every
 * change is one call of the registry (one transaction).
 */
import { existsSync } from "node:fs"
import { basename, dirname, join, resolve } from "node:path"
import * as ConfigFiles from "@keel/reservation/ConfigFiles"
import * as Inventory from "@keel/reservation/Inventory"
import * as Occupancy from "@keel/reservation/Occupancy"
import * as Port from "@keel/reservation/Port"
import * as ProjectConfig from "@keel/reservation/ProjectConfig"
import * as Reservation from "@keel/reservation/Reservation"
import * as Schemas from "@keel/reservation/Schemas"
import * as Dsn from "@keel/sql/Dsn"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type {
  AssertDataDirInput,
  AssertPortInput,
  AssertReservationInput,
  AutoreserveInput,
  CompactInput,
  ExcludeInput,
  InitInput,
  MigrateInput,
  PortInfoInput,
  ScanInput,
  ValidateInput
} from "../../commands/port/Trop.js"
import { InvalidInput } from "../../Failure.js"
import * as Layers from "../../Layers.js"
import * as Output from "../../Output.js"
import * as Parse from "../../Parse.js"
import type * as Formats from "./Formats.js"
import * as Group from "./Group.js"
import * as Settings from "./Settings.js"

/** An assertion did not hold (exit code 1). */
export class AssertionFailed extends Data.TaggedError("AssertionFailed")<{ readonly reason: string }> {
  override get message(): string {
    return this.reason
  }
}

const withRegistry = <E, R>(program: Effect.Effect<void, E, R>) =>
  Effect.provide(program, Layers.reservations)

const encode = Schema.encodeSync(Schemas.Reservation)

const check = (holds: boolean, reason: string) =>
  holds ? Effect.void : Effect.fail(new AssertionFailed({ reason }))

/** The group of the nearest trop.yaml, reserved for its directory, printed. */
export const reserveProjectGroup = (
  input: Settings.AllocationFlags & { readonly shell: Formats.Shell; readonly dryRun: boolean },
  format: Group.Format,
  loaded: Effect.Effect.Success<ReturnType<typeof Settings.load>>,
  file: ProjectConfig.Loaded & { readonly dir: string }
) =>
  Effect.gen(function* () {
    const reservations = file.document.reservations
    if (reservations === undefined) {
      return yield* new InvalidInput({ source: file.file, reason: "has no reservations section to reserve" })
    }
    const group = yield* ProjectConfig.groupOf(reservations, file.file)
    const registry = yield* Reservation.Reservations
    const fields = Settings.allocationFields(loaded.effective, input, undefined)
    const reserved = yield* registry.reserveGroup({
      ...fields,
      path: file.dir,
      base: group.base,
      services: group.services.map(({ offset, preferred, tag }) => ({ tag, offset, preferred }))
    })
    yield* Group.print(
      format,
      input.shell,
      reserved.path,
      reserved.reservations.map((entry, index) => ({ reserved: entry, env: group.services[index]?.env })),
      input.dryRun
    )
  })

/** `keel port autoreserve`. */
export const autoreserve = (input: AutoreserveInput) =>
  withRegistry(
    Effect.gen(function* () {
      const loaded = yield* Settings.load()
      const project = loaded.layers.project
      if (project === undefined) {
        return yield* new InvalidInput({
          source: process.cwd(),
          reason: `no ${ProjectConfig.projectFile} here or in a parent directory (keel port init writes one)`
        })
      }
      yield* reserveProjectGroup(
        input,
        Option.getOrElse(input.format, () => "export" as const),
        loaded,
        project
      )
    })
  )

/** `keel port list-projects`: the registry's projects as `Inventory.projects` counts them. */
export const listProjects = () =>
  withRegistry(
    Effect.gen(function* () {
      const { projects } = yield* Inventory.projects(yield* Reservation.Reservations)
      yield* Output.result({ projects }, () =>
        Output.table(
          ["PROJECT", "RESERVATIONS"],
          projects.map(({ project, reservations }) => [Output.orDash(project), String(reservations)])
        )
      )
    })
  )

/** `keel port prune` / `expire` / `autoclean`. */
export const clean = (
  kind: "prune" | "expire" | "autoclean",
  input: { readonly dryRun: boolean; readonly days: Option.Option<number> },
  _withDays: boolean
) =>
  withRegistry(
    Effect.gen(function* () {
      const loaded = yield* Settings.load()
      const days = Option.getOrElse(input.days, () => loaded.effective.expireAfterDays ?? 30)
      if (!(Number.isInteger(days) && days >= 1 && days <= 3650)) {
        return yield* new InvalidInput({
          source: "--days",
          reason: `${days} is not a whole number of days from 1 to 3650`
        })
      }
      const registry = yield* Reservation.Reservations
      const report = yield* registry.cleanup({
        dryRun: input.dryRun || undefined,
        expired: kind !== "prune",
        missingPaths: kind !== "expire",
        unusedFor: kind === "prune" ? undefined : `${days} days`
      })
      const verb = report.dryRun ? "would remove" : "removed"
      yield* Output.confirmation(
        {
          dryRun: report.dryRun,
          removed: report.removed.map(({ reason, reservation }) => ({
            reason,
            reservation: encode(reservation)
          }))
        },
        () =>
          report.removed.length === 0
            ? `nothing to ${kind}`
            : report.removed
                .map(
                  ({ reason, reservation }) =>
                    `${verb} ${reservation.port} ${Output.orDash(reservation.tag)} ${Output.singleLine(reservation.path)} (${reason})`
                )
                .join("\n")
      )
    })
  )

/** `keel port migrate`. */
export const migrate = (input: MigrateInput) =>
  withRegistry(
    Effect.gen(function* () {
      const registry = yield* Reservation.Reservations
      const result = yield* registry.migrate({
        from: resolve(process.cwd(), input.from),
        to: resolve(process.cwd(), input.to),
        recursive: input.recursive || undefined,
        overwrite: input.overwrite || undefined,
        dryRun: input.dryRun || undefined
      })
      const verb = result.dryRun ? "would move" : "moved"
      yield* Output.confirmation(
        {
          dryRun: result.dryRun,
          moved: result.moved.map(({ from, reservation }) => ({ from, reservation: encode(reservation) })),
          replaced: result.replaced.map((reservation) => encode(reservation))
        },
        () =>
          result.moved.length === 0
            ? "nothing to migrate"
            : result.moved
                .map(
                  ({ from, reservation }) =>
                    `${verb} ${reservation.port} ${Output.orDash(reservation.tag)} ${Output.singleLine(from)} -> ${Output.singleLine(reservation.path)}`
                )
                .join("\n")
      )
    })
  )

/** `keel port assert-reservation`. */
export const assertReservation = (input: AssertReservationInput) =>
  withRegistry(
    Effect.gen(function* () {
      const loaded = yield* Settings.load()
      const path = Settings.pathOf(loaded.effective, input.path)
      const registry = yield* Reservation.Reservations
      const found = yield* Effect.option(
        Effect.catchTag(
          registry.show({ path, tag: Option.getOrUndefined(input.tag) }),
          "ReservationNotFound",
          () => Effect.fail(undefined)
        )
      )
      const holds = Option.match(found, {
        onNone: () => false,
        onSome: (reservation) =>
          Option.match(input.port, { onNone: () => true, onSome: (port) => reservation.port === port })
      })
      const key = `${path}${Option.match(input.tag, { onNone: () => "", onSome: (tag) => ` [${tag}]` })}`
      yield* check(
        holds !== input.not,
        input.not
          ? `${key} is reserved`
          : `${key} is not reserved${Option.isSome(input.port) ? " with that port" : ""}`
      )
      if (Option.isSome(found))
        yield* Output.result({ reservation: encode(found.value) }, () => String(found.value.port))
    })
  )

/** `keel port assert-port`. */
export const assertPort = (input: AssertPortInput) =>
  withRegistry(
    Effect.gen(function* () {
      const registry = yield* Reservation.Reservations
      const found = yield* Effect.option(
        Effect.catchTag(registry.showPort({ port: input.port }), "ReservationNotFound", () =>
          Effect.fail(undefined)
        )
      )
      yield* check(
        Option.isSome(found) !== input.not,
        input.not ? `port ${input.port} is reserved` : `port ${input.port} is not reserved`
      )
    })
  )

const inUseText = (inUse: ReadonlyArray<Occupancy.InUse> | null) =>
  inUse === null
    ? "not checked (every probe is skipped)"
    : inUse.length === 0
      ? "no"
      : `yes (${inUse.map((socket) => `${socket.protocol} ${socket.host}`).join(", ")})`

/** `keel port port-info`: what `Inventory.inspectPort` finds, probed (when asked) with the layers' policy. */
export const portInfo = (input: PortInfoInput) =>
  withRegistry(
    Effect.gen(function* () {
      const valid = yield* Port.validate(input.port, "port")
      const occupancyFlags = [
        input.noOccupancyCheck,
        input.checkAllInterfaces,
        input.skipIpv4,
        input.skipIpv6,
        input.skipTcp,
        input.skipUdp
      ]
      if (!input.includeOccupancy && occupancyFlags.some(Boolean)) {
        return yield* new InvalidInput({
          source: "port-info",
          reason: "the occupancy flags need --include-occupancy"
        })
      }
      const registry = yield* Reservation.Reservations
      const policy = input.includeOccupancy
        ? Settings.occupancyPolicy((yield* Settings.load()).effective.occupancy, input)
        : undefined
      // As trop: probed only when asked, and "not checked" when the policy probes nothing.
      const probe =
        policy === undefined || ProjectConfig.probesNothing(policy)
          ? undefined
          : Settings.occupancyProbe(policy, registry.config.occupancy.timeout)
      const { port, reservation, inUse } = yield* Inventory.inspectPort(registry, valid, probe)
      yield* Output.result(
        {
          port,
          reservation: reservation === null ? null : encode(reservation),
          occupied: inUse === null ? null : inUse.length > 0,
          inUse
        },
        () =>
          [
            `port ${port}: ${reservation === null ? "not reserved" : `reserved by ${Output.singleLine(reservation.path)} [${Output.orDash(reservation.tag)}]`}`,
            ...(policy === undefined ? [] : [`in use: ${inUseText(inUse)}`])
          ].join("\n")
      )
    })
  )

const sqliteFile = Effect.map(Layers.dsn, (dsn) => {
  const parsed = Dsn.parse(Redacted.value(dsn))
  return Either.isRight(parsed) && parsed.right._tag === "Sqlite" && parsed.right.filename !== ":memory:"
    ? { file: resolve(parsed.right.filename), redacted: parsed.right.redacted }
    : {
        file: undefined,
        redacted: Either.isRight(parsed) ? parsed.right.redacted : Dsn.redact(Redacted.value(dsn))
      }
})

/** `keel port show-data-dir`. */
export const showDataDir = () =>
  Effect.gen(function* () {
    const { file, redacted } = yield* sqliteFile
    yield* Output.result({ dataDir: file === undefined ? null : dirname(file), database: redacted }, () =>
      file === undefined ? redacted : dirname(file)
    )
  })

/** `keel port assert-data-dir`. */
export const assertDataDir = (input: AssertDataDirInput) =>
  Effect.gen(function* () {
    const { file, redacted } = yield* sqliteFile
    const exists = file !== undefined && existsSync(file)
    yield* check(
      exists !== input.not,
      input.not ? `the database ${redacted} exists` : `the database ${redacted} does not exist`
    )
  })

/** `keel port validate`. */
export const validate = (input: ValidateInput) =>
  Effect.gen(function* () {
    const file = resolve(process.cwd(), input.file)
    yield* Effect.provide(ProjectConfig.load(file), Settings.files)
    yield* Output.confirmation({ file, valid: true }, () => `${file}: valid`)
  })

/** `keel port init`. */
export const init = (input: InitInput) =>
  Effect.gen(function* () {
    const dir = Option.match(input.path, {
      onNone: () => process.cwd(),
      onSome: (path) => resolve(process.cwd(), path)
    })
    const file = join(dir, ProjectConfig.projectFile)
    if (existsSync(file) && !input.force) {
      return yield* new InvalidInput({ source: file, reason: "exists already (--force replaces it)" })
    }
    const text = ConfigFiles.starter(Option.getOrElse(input.project, () => basename(dir)))
    yield* ProjectConfig.parse(text, file)
    yield* Effect.tryPromise({
      try: () => import("node:fs/promises").then((fs) => fs.writeFile(file, text)),
      catch: (error) => new InvalidInput({ source: file, reason: String(error) })
    })
    yield* Output.confirmation({ file }, () => `wrote ${file}`)
  })

/** The file `exclude`, `compact-exclusions` and `scan --autoexclude` edit. */
const exclusionsFile = (global: boolean) =>
  Effect.gen(function* () {
    if (global) return Settings.userConfigFile()
    const dir = yield* Effect.provide(ProjectConfig.findProject(process.cwd()), Settings.files)
    if (dir === undefined) {
      return yield* new InvalidInput({
        source: process.cwd(),
        reason: `no ${ProjectConfig.projectFile} here or in a parent directory (use --global or keel port init)`
      })
    }
    return join(dir, ProjectConfig.projectFile)
  })

const spanText = (range: { readonly min: number; readonly max: number }) =>
  range.min === range.max ? `${range.min}` : `${range.min}..${range.max}`

const printExclusions = (
  file: string,
  ranges: ReadonlyArray<{ readonly min: number; readonly max: number }>
) =>
  Output.confirmation(
    { file, excluded: ranges },
    () => `${file}: excluded ${ranges.length === 0 ? "nothing" : ranges.map(spanText).join(", ")}`
  )

/** `keel port exclude`. */
export const exclude = (input: ExcludeInput) =>
  Effect.gen(function* () {
    const file = yield* exclusionsFile(input.global)
    const added = yield* Effect.forEach(input.ports, (text, index) =>
      Effect.mapError(
        Port.parseExclusion(Parse.exclusion(text.replace("..", "-")), `port-or-range[${index}]`),
        (error) => new InvalidInput({ source: JSON.stringify(text), reason: error.message })
      )
    )
    const ranges = yield* Effect.provide(
      ConfigFiles.editExclusions(file, (current) => [...current, ...added]),
      Settings.files
    )
    yield* printExclusions(file, ranges)
  })

/** `keel port compact-exclusions`. */
export const compactExclusions = (input: CompactInput) =>
  Effect.gen(function* () {
    const file = yield* exclusionsFile(input.global)
    const ranges = yield* Effect.provide(
      ConfigFiles.editExclusions(file, ConfigFiles.compact),
      Settings.files
    )
    yield* printExclusions(file, ranges)
  })

/** `keel port scan`. */
export const scan = (input: ScanInput) =>
  withRegistry(
    Effect.gen(function* () {
      const loaded = yield* Settings.load()
      const registry = yield* Reservation.Reservations
      const range = yield* Option.match(input.range, {
        onNone: () => Effect.succeed(loaded.effective.range ?? registry.config.range),
        onSome: (text) => Port.parseRange(text, "range")
      })
      const policy = Settings.occupancyPolicy(loaded.effective.occupancy, input)
      const probe = Settings.occupancyProbe(policy, registry.config.occupancy.timeout)
      const ports = Array.from({ length: range.max - range.min + 1 }, (_, index) => range.min + index)
      const inspected = yield* Effect.forEach(
        ports,
        (port) => Effect.map(Occupancy.inUse(port, probe), (inUse) => ({ port, inUse })),
        { concurrency: 32 }
      )
      const reserved = new Set<number>((yield* registry.list()).map((reservation) => reservation.port))
      const found = inspected
        .filter((entry) => entry.inUse.length > 0)
        .map(({ port, inUse }) => ({ port, reserved: reserved.has(port), inUse }))
      let excluded:
        | {
            readonly file: string
            readonly ranges: ReadonlyArray<{ readonly min: number; readonly max: number }>
          }
        | undefined
      if (input.autoexclude) {
        const add = found
          .filter((entry) => !entry.reserved)
          .map((entry) => ({ min: entry.port, max: entry.port }))
        const file = yield* exclusionsFile(input.global)
        const ranges = yield* Effect.provide(
          ConfigFiles.editExclusions(file, (current) => ConfigFiles.compact([...current, ...add])),
          Settings.files
        )
        excluded = { file, ranges }
      }
      yield* Output.result({ range, occupied: found, excluded: excluded ?? null }, () =>
        [
          ...(found.length === 0
            ? []
            : [
                Output.table(
                  ["PORT", "RESERVED", "IN USE"],
                  found.map((entry) => [
                    String(entry.port),
                    entry.reserved ? "yes" : "no",
                    inUseText(entry.inUse)
                  ])
                )
              ]),
          ...(excluded === undefined
            ? []
            : [`${excluded.file}: excluded ${excluded.ranges.map(spanText).join(", ")}`])
        ].join("\n")
      )
    })
  )
