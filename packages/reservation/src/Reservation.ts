/**
 * The port reservation registry: a (path, tag) gets a port and keeps it, and no two reservations
 * ever share a port — across fibers, processes and machines sharing one database.
 *
 * This module is the service: its tag, its `Service` interface, validation of every request
 * (`internal/validate.ts`, before the database is touched) and the layers. The statements are in
 * `SqlReservationStore.ts` behind the `ReservationStore` seam. Every allocation is ONE write
 * transaction that spans plan and execute (DESIGN.md rule 2) — on better-sqlite3 one synchronous
 * driver step: take the allocation lock, read the key's reservations, choose (the lowest free port
 * found by SQL), write, commit; a port whose occupancy must be probed is probed under the lock
 * (`internal/allocate.ts`, `SqlReservationStore.ts`). Release, cleanup and migrate take the same
 * lock; `UNIQUE (port)` backs it all up. A busy or serialization failure rolls the whole
 * transaction back and it is re-run (`Retry.plan`); nothing is ever half-written.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { Backend } from "@keel/sql"
import * as Migrations from "@keel/sql/Migrations"
import * as Telemetry from "@keel/sql/Telemetry"
import type { ConfigError } from "effect"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Allocating from "./internal/allocate.js"
import * as Cleanup from "./internal/cleanup.js"
import * as Paths from "./internal/paths.js"
import * as Rows from "./internal/rows.js"
import * as Validate from "./internal/validate.js"
import { migrations } from "./migrations/index.js"
import * as Occupancy from "./Occupancy.js"
import * as Port from "./Port.js"
import * as ReservationConfig from "./ReservationConfig.js"
import {
  type InvalidConfig,
  type InvalidLabel,
  type InvalidPath,
  type InvalidPort,
  InvalidRequest,
  type InvalidTag,
  type MigrationConflict,
  ReservationNotFound,
  ReservationStoreError,
  type ReserveError,
  type UnrelatedPath
} from "./ReservationError.js"
import { ReservationStore, type Store, untagged } from "./ReservationStore.js"
import type {
  CleanupReport,
  CleanupRequest,
  GroupRequest,
  GroupReserved,
  ListRequest,
  Migrated,
  MigrateRequest,
  Released,
  ReleaseRequest,
  Reservation,
  Reserved,
  ReserveRequest,
  ShowPortRequest,
  ShowRequest
} from "./Schemas.js"
import { validateTag } from "./Schemas.js"
import * as SqlReservationStore from "./SqlReservationStore.js"

/** The registry's schema, for `keel db migrate`. */
export { migrations }

/** The key of the lock that serializes every write on PostgreSQL (SQLite's BEGIN IMMEDIATE does it there). */
export const allocationLock = SqlReservationStore.allocationLock

/** The longest ttl (or `unusedFor`) accepted: ten years. */
export const maxTtl = Validate.maxTtl

/** The registry. Every method validates its request first: bad input is a typed error and changes nothing. */
export interface Service {
  /** The defaults requests override. */
  readonly config: ReservationConfig.ReservationConfig
  /**
   * The port of (path, tag): the existing one (refreshing its last use), else the preferred port
   * when it is free, else the lowest free port of the range. Idempotent per key.
   */
  readonly reserve: (request: ReserveRequest) => Effect.Effect<Reserved, ReserveError>
  /** A port for every service of a path in one transaction: all of them, or none and an error. */
  readonly reserveGroup: (request: GroupRequest) => Effect.Effect<GroupReserved, ReserveError>
  /**
   * Removes one tag of a path, every tag of it, only its untagged reservation, or (recursive)
   * all of that below it too; a dry run only reports them. Idempotent.
   */
  readonly release: (
    request: ReleaseRequest
  ) => Effect.Effect<
    Released,
    InvalidPath | InvalidTag | InvalidRequest | UnrelatedPath | ReservationStoreError
  >
  /** The reservations matching every given filter, by path then tag. */
  readonly list: (
    request?: ListRequest
  ) => Effect.Effect<
    ReadonlyArray<Reservation>,
    InvalidPath | InvalidTag | InvalidLabel | ReservationStoreError
  >
  /** The reservation of one (path, tag). */
  readonly show: (
    request: ShowRequest
  ) => Effect.Effect<Reservation, InvalidPath | InvalidTag | ReservationNotFound | ReservationStoreError>
  /** The reservation holding one port. */
  readonly showPort: (
    request: ShowPortRequest
  ) => Effect.Effect<Reservation, InvalidPort | ReservationNotFound | ReservationStoreError>
  /**
   * Removes reservations past their ttl, whose path no longer exists, or (when asked) unused for
   * a while; a dry run only reports them. A reservation used again meanwhile is kept.
   */
  readonly cleanup: (
    request?: CleanupRequest
  ) => Effect.Effect<CleanupReport, InvalidRequest | ReservationStoreError>
  /**
   * Moves the reservations of one path (and below it, when recursive) to another in ONE
   * transaction: ports are kept; a destination key already reserved is `MigrationConflict`
   * unless `overwrite`. A dry run only reports.
   */
  readonly migrate: (
    request: MigrateRequest
  ) => Effect.Effect<Migrated, InvalidPath | InvalidRequest | MigrationConflict | ReservationStoreError>
}

/** The registry in context. */
export class Reservations extends Context.Tag("@keel/reservation/Reservations")<Reservations, Service>() {}

/** What the operations need from their context besides the store. */
type Needs = FileSystem.FileSystem | Path.Path

/**
 * The registry over `store`: validation, then the store's transactions, with occupancy probed
 * between them (never while the allocation lock is held).
 */
export const fromStore = (
  config: ReservationConfig.ReservationConfig,
  store: Store
): Effect.Effect<Service, never, Needs | Occupancy.Occupancy> =>
  Effect.gen(function* () {
    const occupancy = yield* Occupancy.Occupancy
    // Exactly the services the operations need, provided to each of them; everything else
    // (a retry policy, an enclosing transaction) comes from the caller.
    const context = Context.make(FileSystem.FileSystem, yield* FileSystem.FileSystem).pipe(
      Context.add(Path.Path, yield* Path.Path)
    )
    const paths = Paths.cached()
    const provided = <A, E>(effect: Effect.Effect<A, E, Needs>) => Effect.provide(effect, context)

    const reserve = (request: ReserveRequest): Effect.Effect<Reserved, ReserveError> =>
      provided(
        Effect.gen(function* () {
          const common = yield* Validate.commonFor(config, paths, request)
          const tag = yield* Validate.storedTag(request.tag, "tag")
          const preferred =
            request.preferred === undefined ? undefined : yield* Port.validate(request.preferred, "preferred")
          const allocation = Validate.allocationOf("reserve", common, [{ tag, preferred }])
          const [reserved] = yield* Allocating.run(store, occupancy, common.occupancy, allocation)
          if (reserved === undefined) {
            return yield* new ReservationStoreError({
              operation: "reserve",
              cause: Rows.invalidRow("the allocation returned no reservation")
            })
          }
          return reserved
        })
      )

    const reserveGroup = (request: GroupRequest): Effect.Effect<GroupReserved, ReserveError> =>
      provided(
        Effect.gen(function* () {
          const common = yield* Validate.commonFor(config, paths, request)
          const wants = yield* Validate.groupWants(request.services)
          const base = request.base === undefined ? undefined : yield* Port.validate(request.base, "base")
          const allocation = Validate.allocationOf("reserveGroup", common, wants, base)
          const reservations = yield* Allocating.run(store, occupancy, common.occupancy, allocation)
          return { path: common.path, reservations }
        })
      )

    const release = (request: ReleaseRequest) =>
      provided(
        Effect.gen(function* () {
          const path = yield* paths.anyPath("path", request.path)
          const cwd = request.cwd === request.path ? path : yield* paths.anyPath("cwd", request.cwd)
          yield* Paths.checkRelated(path, cwd, request.allowUnrelated === true)
          if (request.tag !== undefined && request.untaggedOnly === true) {
            return yield* new InvalidRequest({
              field: "untaggedOnly",
              reason: "give either a tag or untaggedOnly, not both"
            })
          }
          const tag =
            request.untaggedOnly === true
              ? untagged
              : request.tag === undefined
                ? undefined
                : yield* validateTag(request.tag, "tag")
          const filter = request.recursive === true ? { under: path, tag } : { path, tag }
          const released =
            request.dryRun === true ? yield* store.find(filter, "release") : yield* store.remove(filter)
          return { dryRun: request.dryRun === true, released: [...released].sort(Rows.byKey) }
        })
      )

    const list = (request: ListRequest = {}) =>
      provided(
        Effect.gen(function* () {
          const under =
            request.pathPrefix === undefined
              ? undefined
              : yield* paths.anyPath("pathPrefix", request.pathPrefix)
          const tag = request.tag === undefined ? undefined : yield* validateTag(request.tag, "tag")
          const project = yield* Validate.optionalLabel(request.project, "project")
          return yield* store.find({ under, tag, project }, "list")
        })
      )

    const show = (request: ShowRequest) =>
      provided(
        Effect.gen(function* () {
          const path = yield* paths.anyPath("path", request.path)
          const tag = request.tag === undefined ? undefined : yield* validateTag(request.tag, "tag")
          const [reservation] = yield* store.find({ path, tag: tag ?? untagged }, "show")
          if (reservation === undefined) return yield* new ReservationNotFound({ path, tag: tag ?? null })
          return reservation
        })
      )

    const showPort = (request: ShowPortRequest) =>
      Effect.gen(function* () {
        const port = yield* Port.validate(request.port, "port")
        const [reservation] = yield* store.find({ port }, "showPort")
        if (reservation === undefined) return yield* new ReservationNotFound({ port })
        return reservation
      })

    const cleanup = (request: CleanupRequest = {}) =>
      provided(
        Effect.gen(function* () {
          const unusedForMs = yield* Validate.durationOf(request.unusedFor, "unusedFor")
          const now = yield* Clock.currentTimeMillis
          const rows = yield* store.all("cleanup")
          const found = yield* Cleanup.candidates(
            rows,
            { expired: request.expired !== false, unusedForMs, missingPaths: request.missingPaths !== false },
            now
          )
          return yield* Cleanup.remove(store, found, request, "cleanup")
        })
      )

    const migrate = (request: MigrateRequest) =>
      provided(
        Effect.gen(function* () {
          const from = yield* paths.anyPath("from", request.from)
          const to = yield* paths.anyPath("to", request.to)
          const separator = (yield* Path.Path).sep
          if (from === to || (request.recursive === true && Paths.isWithin(from, to, separator))) {
            return yield* new InvalidRequest({
              field: "to",
              reason: `${JSON.stringify(to)} is ${from === to ? "the same path as" : "inside"} ${JSON.stringify(from)}`
            })
          }
          const result = yield* store.migrate({
            from,
            to,
            recursive: request.recursive === true,
            overwrite: request.overwrite === true,
            dryRun: request.dryRun === true
          })
          const moved: Array<Migrated["moved"][number]> = []
          for (const { from: before, to: after } of result.moved) {
            const reservation = yield* Rows.decodedOr("migrate", after)
            const previous = yield* Rows.decodedOr("migrate", before)
            moved.push({ from: previous.path, reservation })
          }
          const replaced = yield* Effect.forEach(result.replaced, (row) => Rows.decodedOr("migrate", row))
          return { dryRun: request.dryRun === true, moved, replaced }
        })
      )

    return { config, reserve, reserveGroup, release, list, show, showPort, cleanup, migrate }
  })

/**
 * Builds the registry over the database, filesystem and occupancy check in context. It does not
 * run migrations (the layers do); `config` holds the defaults requests override.
 */
export const make = (
  config: ReservationConfig.ReservationConfig
): Effect.Effect<
  Service,
  never,
  SqlClient.SqlClient | Backend.Backend | FileSystem.FileSystem | Path.Path | Occupancy.Occupancy
> => Effect.flatMap(SqlReservationStore.make, (store) => fromStore(config, store))

/** The registry over the `ReservationStore` in context (any store, e.g. one a test builds). */
export const makeFromContext = (
  config: ReservationConfig.ReservationConfig
): Effect.Effect<Service, never, ReservationStore | Needs | Occupancy.Occupancy> =>
  Effect.flatMap(ReservationStore, (store) => fromStore(config, store))

/** Every way starting the registry can fail. */
export type StartError = Migrations.MigrationError

/**
 * The registry with its migrations applied at start, over any `FileSystem`, `Path` and
 * `Occupancy` (tests substitute them). With tracing on (`Telemetry.enabled`), every operation is
 * a span `keel.reservation.<operation>`; off, the service is `make`'s, untouched.
 */
export const layerWith = (
  config: ReservationConfig.ReservationConfig = ReservationConfig.defaults
): Layer.Layer<
  Reservations,
  StartError,
  SqlClient.SqlClient | Backend.Backend | FileSystem.FileSystem | Path.Path | Occupancy.Occupancy
> =>
  Layer.effect(
    Reservations,
    Effect.zipRight(Migrations.run(migrations), Telemetry.tracedWhenEnabled("keel.reservation", make(config)))
  )

/** Node's filesystem and the real occupancy probe. */
const nodeServices = Layer.mergeAll(NodeFileSystem.layer, NodePath.layer, Occupancy.layer)

/** The registry on Node: migrations applied at start; requires only the database. */
export const layer = (
  config: ReservationConfig.ReservationConfig = ReservationConfig.defaults
): Layer.Layer<Reservations, StartError, SqlClient.SqlClient | Backend.Backend> =>
  Layer.provide(layerWith(config), nodeServices)

/** `layer` with its config read from the file `KEEL_RESERVATION_CONFIG` names (defaults when unset). */
export const layerConfig: Layer.Layer<
  Reservations,
  StartError | InvalidConfig | ConfigError.ConfigError,
  SqlClient.SqlClient | Backend.Backend
> = Layer.unwrapEffect(Effect.map(ReservationConfig.fromEnvironment, layer)).pipe(
  Layer.provide(NodeFileSystem.layer)
)
