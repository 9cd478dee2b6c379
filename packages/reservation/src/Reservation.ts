/**
 * The port reservation registry: a (path, tag) gets a port and keeps it, and no two reservations
 * ever share a port — across fibers, processes and machines sharing one database.
 *
 * Every allocation is ONE write transaction that spans plan and execute (DESIGN.md rule 2): take
 * the allocation lock (BEGIN IMMEDIATE on SQLite/libSQL; a transaction-scoped advisory lock on
 * PostgreSQL/PGlite), read the key's reservation and the taken ports, choose (probing occupancy),
 * write, commit. Release and cleanup take the same lock, so on PostgreSQL no allocation can
 * refresh a reservation that a concurrent cleanup is deleting. `UNIQUE (port)` backs it all up.
 * A busy or serialization failure rolls the whole transaction back and it is re-run through
 * `Retry.transaction`; nothing is ever half-written.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Backend, DbError, Migrations, Retry, Telemetry, Transaction } from "@keel/sql"
import { Clock, type ConfigError, Context, Duration, Effect, Layer, Option, Predicate, Schema } from "effect"
import * as Allocator from "./Allocator.js"
import * as Paths from "./internal/paths.js"
import { migrations } from "./migrations/index.js"
import * as Occupancy from "./Occupancy.js"
import * as Port from "./Port.js"
import * as ReservationConfig from "./ReservationConfig.js"
import {
  type InvalidConfig,
  type InvalidLabel,
  type InvalidPath,
  type InvalidPort,
  type InvalidRange,
  InvalidRequest,
  type InvalidTag,
  NoPortAvailable,
  PreferredPortReserved,
  ReservationNotFound,
  ReservationStoreError,
  type ReserveError,
  StickyFieldChanged,
  type UnrelatedPath
} from "./ReservationError.js"
import {
  type CleanupReason,
  type CleanupReport,
  type CleanupRequest,
  type GroupRequest,
  type GroupReserved,
  type Label,
  type ListRequest,
  maxGroupSize,
  type Outcome,
  type Released,
  type ReleaseRequest,
  Reservation,
  type ReservationPath,
  type Reserved,
  type ReserveRequest,
  type ShowPortRequest,
  type ShowRequest,
  type Tag,
  validateLabel,
  validateTag
} from "./Schemas.js"

/** The registry's schema, for `keel db migrate`. */
export { migrations }

/** The key of the lock that serializes every write on PostgreSQL (SQLite's BEGIN IMMEDIATE does it there). */
export const allocationLock = "keel-reservation-allocate"

/** The longest ttl (or `unusedFor`) accepted: ten years. */
export const maxTtl = Duration.days(3650)

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
}

/** The registry in context. */
export class Reservations extends Context.Tag("@keel/reservation/Reservations")<Reservations, Service>() {}

/** A row of `keel_reservations` as every backend returns it. */
const Row = Schema.Struct({
  path: Schema.String,
  tag: Schema.String,
  port: Schema.Number,
  project: Schema.NullOr(Schema.String),
  task: Schema.NullOr(Schema.String),
  created_at: Schema.Number,
  last_used_at: Schema.Number,
  ttl_ms: Schema.NullOr(Schema.Number),
  expires_at: Schema.NullOr(Schema.Number)
})
type Row = typeof Row.Type

const decodeRows = Schema.decodeUnknown(Schema.Array(Row))

/** The part of a row the allocator needs about the ports others hold. */
const Holder = Schema.Struct({
  path: Schema.String,
  tag: Schema.String,
  port: Schema.Number,
  expires_at: Schema.NullOr(Schema.Number)
})
type Holder = typeof Holder.Type

const decodeHolders = Schema.decodeUnknown(Schema.Array(Holder))
const decodeReservation = Schema.decodeUnknown(Reservation)

/** The untagged reservation is stored with tag `''` (see the migration). */
const untagged = ""

const isoOf = (millis: number): string => new Date(millis).toISOString()

/** Failures of the database or of a transaction, which the boundary wraps in `ReservationStoreError`. */
type StoreFailure = DbError.DbError | Transaction.TransactionError

const isStoreFailure = (u: unknown): u is StoreFailure =>
  DbError.isDbError(u) ||
  Predicate.isTagged(u, "CommitRejected") ||
  Predicate.isTagged(u, "TransactionAborted") ||
  Predicate.isTagged(u, "CommitOutcomeUnknown")

/** Maps database and transaction failures to `ReservationStoreError` naming the operation. */
const storeErrors =
  (operation: string) =>
  <A, E, R>(effect: Effect.Effect<A, E | StoreFailure, R>) =>
    Effect.catchIf(effect, isStoreFailure, (cause) =>
      Effect.fail(new ReservationStoreError({ operation, cause }))
    )

/** A row that does not decode means the table holds what the schema forbids: a store failure. */
const invalidRow = (message: string) =>
  new DbError.DatabaseFailure({ code: "INVALID_ROW", message: `a stored reservation is invalid: ${message}` })

/** Stored rows as `Reservation`s. */
const toReservation = (row: Row): Effect.Effect<Reservation, DbError.DbError> =>
  Effect.mapError(
    decodeReservation({
      path: row.path,
      tag: row.tag === untagged ? null : row.tag,
      port: row.port,
      project: row.project,
      task: row.task,
      createdAt: isoOf(row.created_at),
      lastUsedAt: isoOf(row.last_used_at),
      expiresAt: row.expires_at === null ? null : isoOf(row.expires_at)
    }),
    (error) => invalidRow(error.message)
  )

const compareText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

/** Orders reservations by path, then tag (the untagged one first), by code unit as `list` does. */
const byKey = (a: Reservation, b: Reservation): number =>
  compareText(a.path, b.path) || compareText(a.tag ?? "", b.tag ?? "")

const isExpired = (row: { readonly expires_at: number | null }, now: number): boolean =>
  row.expires_at !== null && row.expires_at <= now

/** The settings one allocation runs with: the config with the request's overrides applied. */
interface Settings {
  readonly range: Port.PortRange
  readonly exclude: ReadonlyArray<Port.PortRange>
  readonly occupancy: ReservationConfig.OccupancySettings
}

/** A validated service to place. */
interface Want {
  /** The stored tag (`''` when untagged). */
  readonly tag: string
  readonly preferred?: Port.Port | undefined
  readonly offset?: number | undefined
}

/** A validated allocation: everything the transaction needs, nothing left to check. */
interface Allocation {
  readonly path: ReservationPath
  readonly wants: ReadonlyArray<Want>
  readonly settings: Settings
  readonly base?: Port.Port | undefined
  readonly project: Label | undefined
  readonly task: Label | undefined
  readonly ttlMs: number | undefined
  readonly force: boolean
}

/** A duration given as milliseconds or Effect duration text, positive and at most `maxTtl`. */
const durationOf = (
  input: number | string | undefined,
  field: string
): Effect.Effect<number | undefined, InvalidRequest> => {
  if (input === undefined) return Effect.succeed(undefined)
  const decoded =
    typeof input === "number" ? Option.some(Duration.millis(input)) : Duration.decodeUnknown(input)
  const millis = Option.map(decoded, Duration.toMillis)
  if (
    Option.isSome(millis) &&
    Number.isInteger(millis.value) &&
    millis.value > 0 &&
    millis.value <= Duration.toMillis(maxTtl)
  ) {
    return Effect.succeed(millis.value)
  }
  return Effect.fail(
    new InvalidRequest({
      field,
      reason: `${JSON.stringify(input)} is not a duration from 1 millisecond to 3650 days (milliseconds, or text such as "90 minutes")`
    })
  )
}

const optionalLabel = (raw: string | undefined, field: string) =>
  raw === undefined ? Effect.succeed(undefined) : validateLabel(raw, field)

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
> =>
  Effect.gen(function* () {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const occupancy = yield* Occupancy.Occupancy
    const pathService = yield* Path.Path
    const separator = pathService.sep
    // Exactly the services the operations need, provided to each of them; everything else
    // (a retry policy, an enclosing transaction) comes from the caller.
    const context = Context.make(SqlClient.SqlClient, yield* SqlClient.SqlClient).pipe(
      Context.add(Backend.Backend, yield* Backend.Backend),
      Context.add(FileSystem.FileSystem, yield* FileSystem.FileSystem),
      Context.add(Path.Path, pathService)
    )

    /** Path then tag, by code unit on every backend (PostgreSQL would otherwise use its locale). */
    const keyOrder = sql.onDialectOrElse({
      pg: () => sql`path COLLATE "C", tag COLLATE "C"`,
      orElse: () => sql`path, tag`
    })

    const run = <A>(statement: Effect.Effect<A, SqlError>) => DbError.refine(statement)
    const rows = (statement: Effect.Effect<ReadonlyArray<unknown>, SqlError>) =>
      Effect.flatMap(run(statement), (raw) =>
        Effect.mapError(decodeRows(raw), (error) => invalidRow(error.message))
      )
    const reservations = (statement: Effect.Effect<ReadonlyArray<unknown>, SqlError>) =>
      Effect.flatMap(rows(statement), (found) => Effect.forEach(found, toReservation))

    /** The path and everything below it, by whole segments (no LIKE: SQLite's is case-insensitive). */
    const underPath = (path: string) => {
      const prefix = path.endsWith(separator) ? path : `${path}${separator}`
      return sql`(path = ${path} OR substr(path, 1, ${[...prefix].length}) = ${prefix})`
    }

    // ---- validation: every check runs before the database is touched ----

    const settingsFor = (request: {
      readonly range?: Port.RangeInput | undefined
      readonly exclude?: ReadonlyArray<Port.ExclusionInput> | undefined
      readonly occupancy?: ReserveRequest["occupancy"]
    }): Effect.Effect<Settings, InvalidPort | InvalidRange | InvalidRequest> =>
      Effect.gen(function* () {
        const range =
          request.range === undefined ? config.range : yield* Port.parseRange(request.range, "range")
        const extra = yield* ReservationConfig.parseExclusions(request.exclude ?? [], "exclude")
        const occupancySettings = yield* ReservationConfig.applyOccupancy(
          config.occupancy,
          request.occupancy,
          "occupancy"
        )
        return { range, exclude: [...config.exclude, ...extra], occupancy: occupancySettings }
      })

    const placeFor = (request: {
      readonly path: string
      readonly cwd: string
      readonly allowUnrelated?: boolean | undefined
      readonly force?: boolean | undefined
    }) =>
      Effect.gen(function* () {
        const path = yield* Paths.existingDirectory("path", request.path)
        const cwd = request.cwd === request.path ? path : yield* Paths.anyPath("cwd", request.cwd)
        yield* Paths.checkRelated(path, cwd, request.allowUnrelated === true || request.force === true)
        return path
      })

    const commonFor = (request: ReserveRequest | GroupRequest) =>
      Effect.gen(function* () {
        const path = yield* placeFor(request)
        const settings = yield* settingsFor(request)
        const project = yield* optionalLabel(request.project, "project")
        const task = yield* optionalLabel(request.task, "task")
        const ttlMs = yield* durationOf(request.ttl, "ttl")
        return { path, settings, project, task, ttlMs, force: request.force === true }
      })

    const groupWants = (services: GroupRequest["services"]) =>
      Effect.gen(function* () {
        if (services.length === 0 || services.length > maxGroupSize) {
          return yield* new InvalidRequest({
            field: "services",
            reason: `a group has from 1 to ${maxGroupSize} services, not ${services.length}`
          })
        }
        const wants: Array<Want> = []
        for (const [index, service] of services.entries()) {
          const field = `services[${index}]`
          const tag = yield* validateTag(service.tag, `${field}.tag`)
          const preferred =
            service.preferred === undefined
              ? undefined
              : yield* Port.validate(service.preferred, `${field}.preferred`)
          const offset = service.offset
          if (offset !== undefined && !(Number.isInteger(offset) && offset >= 0 && offset < Port.highest)) {
            return yield* new InvalidRequest({
              field: `${field}.offset`,
              reason: `${offset} is not a whole number from 0 to ${Port.highest - 1}`
            })
          }
          const duplicate = (reason: string, subfield: string) =>
            new InvalidRequest({ field: `${field}.${subfield}`, reason })
          if (wants.some((want) => want.tag === tag))
            return yield* duplicate(`tag "${tag}" appears twice`, "tag")
          if (preferred !== undefined && wants.some((want) => want.preferred === preferred)) {
            return yield* duplicate(`port ${preferred} is preferred twice`, "preferred")
          }
          if (offset !== undefined && wants.some((want) => want.offset === offset)) {
            return yield* duplicate(`offset ${offset} appears twice`, "offset")
          }
          wants.push({ tag, preferred, offset })
        }
        return wants
      })

    // ---- the allocation transaction ----

    const probe = (settings: Settings) => (port: Port.Port) =>
      settings.occupancy.enabled
        ? occupancy.isOccupied(port, { hosts: settings.occupancy.hosts, timeout: settings.occupancy.timeout })
        : Effect.succeed(false)

    const sticky = (allocation: Allocation, row: Row): Effect.Effect<void, StickyFieldChanged> => {
      if (allocation.force) return Effect.void
      const tag = row.tag === untagged ? null : row.tag
      for (const field of ["project", "task"] as const) {
        const requested = allocation[field]
        if (requested !== undefined && requested !== row[field]) {
          return Effect.fail(
            new StickyFieldChanged({ path: row.path, tag, field, current: row[field], requested })
          )
        }
      }
      return Effect.void
    }

    /** Writes a new reservation row; returns it as stored. */
    const insert = (allocation: Allocation, tag: string, port: Port.Port, now: number, createdAt: number) => {
      const row: Row = {
        path: allocation.path,
        tag,
        port,
        project: allocation.project ?? null,
        task: allocation.task ?? null,
        created_at: createdAt,
        last_used_at: now,
        ttl_ms: allocation.ttlMs ?? null,
        expires_at: allocation.ttlMs === undefined ? null : now + allocation.ttlMs
      }
      return Effect.as(run(sql`INSERT INTO keel_reservations ${sql.insert(row)}`), row)
    }

    /** Marks an existing reservation used now (extending its expiry); returns it as stored. */
    const refresh = (allocation: Allocation, existing: Row, now: number) => {
      const ttl = allocation.ttlMs ?? existing.ttl_ms
      const row: Row = {
        ...existing,
        last_used_at: now,
        ttl_ms: ttl,
        expires_at: ttl === null ? null : now + ttl,
        project: allocation.project ?? existing.project,
        task: allocation.task ?? existing.task
      }
      return Effect.as(
        run(
          sql`UPDATE keel_reservations SET
            last_used_at = ${row.last_used_at},
            ttl_ms = ${row.ttl_ms},
            expires_at = ${row.expires_at},
            project = ${row.project},
            task = ${row.task}
          WHERE path = ${row.path} AND tag = ${row.tag}`
        ),
        row
      )
    }

    const allocate = (allocation: Allocation) =>
      Effect.gen(function* () {
        yield* Transaction.lock(allocationLock)
        const now = yield* Clock.currentTimeMillis
        const { path, settings } = allocation
        const tags = allocation.wants.map((want) => want.tag)
        const existing = new Map(
          (yield* rows(
            sql`SELECT path, tag, port, project, task, created_at, last_used_at, ttl_ms, expires_at
                FROM keel_reservations WHERE path = ${path} AND ${sql.in("tag", tags)}`
          )).map((row) => [row.tag, row] as const)
        )
        for (const row of existing.values()) yield* sticky(allocation, row)

        const moves = (want: Want, row: Row) =>
          allocation.force && want.preferred !== undefined && want.preferred !== row.port
        const placing = allocation.wants.filter((want) => {
          const row = existing.get(want.tag)
          return row === undefined || moves(want, row)
        })
        const placingTags = new Set(placing.map((want) => want.tag))
        const written = new Map<string, { readonly row: Row; readonly outcome: Outcome }>()

        if (placing.length > 0) {
          const preferred = placing.flatMap((want) => (want.preferred === undefined ? [] : [want.preferred]))
          const holders = yield* Effect.flatMap(
            run(
              sql`SELECT path, tag, port, expires_at FROM keel_reservations
                WHERE port BETWEEN ${settings.range.min} AND ${settings.range.max} OR ${sql.in("port", preferred)}`
            ),
            (raw) => Effect.mapError(decodeHolders(raw), (error) => invalidRow(error.message))
          )
          // Taken: every live reservation, and this request's own kept reservations even when
          // expired; the reservations this request moves free their ports.
          const own = (row: Holder) => row.path === path && existing.has(row.tag)
          const taken = new Set(
            holders
              .filter((row) => (own(row) ? !placingTags.has(row.tag) : !isExpired(row, now)))
              .map((row) => row.port)
          )
          const assigned = yield* Allocator.plan(
            {
              range: settings.range,
              exclude: settings.exclude,
              taken,
              wants: placing.map((want) => ({
                key: want.tag,
                preferred: want.preferred,
                offset: want.offset
              })),
              base: allocation.base,
              force: allocation.force
            },
            probe(settings)
          ).pipe(
            Effect.catchTags({
              Exhausted: (failure) =>
                Effect.fail(
                  new NoPortAvailable({
                    path,
                    tag: failure.key === untagged ? null : failure.key,
                    range: { min: settings.range.min, max: settings.range.max },
                    requested: placing.length
                  })
                ),
              PreferredTaken: (failure) => {
                const holder = holders.find((row) => row.port === failure.port)
                return Effect.fail(
                  new PreferredPortReserved({
                    port: failure.port,
                    holderPath: holder?.path ?? "",
                    holderTag: holder === undefined || holder.tag === untagged ? null : holder.tag
                  })
                )
              }
            })
          )
          // Moved reservations leave their old ports first, so that another service of this
          // request may take one of them.
          for (const want of placing) {
            if (existing.has(want.tag)) {
              yield* run(sql`DELETE FROM keel_reservations WHERE path = ${path} AND tag = ${want.tag}`)
            }
          }
          for (const want of placing) {
            const port = assigned.get(want.tag)
            if (port === undefined) continue
            const previous = existing.get(want.tag)
            // An expired reservation of someone else gives its port up here, in the same transaction.
            if (holders.some((holder) => holder.port === port && !own(holder))) {
              yield* run(
                sql`DELETE FROM keel_reservations
                  WHERE port = ${port} AND expires_at IS NOT NULL AND expires_at <= ${now}`
              )
            }
            const row = yield* insert(allocation, want.tag, port, now, previous?.created_at ?? now)
            written.set(want.tag, { row, outcome: previous === undefined ? "created" : "moved" })
          }
        }
        for (const want of allocation.wants) {
          const row = existing.get(want.tag)
          if (row === undefined || placingTags.has(want.tag)) continue
          written.set(want.tag, { row: yield* refresh(allocation, row, now), outcome: "refreshed" })
        }

        return yield* Effect.forEach(allocation.wants, (want) => {
          const entry = written.get(want.tag)
          return entry === undefined
            ? Effect.fail(invalidRow(`no reservation was written for ${path} [${want.tag}]`))
            : Effect.map(toReservation(entry.row), (reservation) => ({ reservation, outcome: entry.outcome }))
        })
      })

    const runAllocation = (operation: string, allocation: Allocation) =>
      Retry.run(Retry.transaction(allocate(allocation))).pipe(storeErrors(operation))

    // ---- the operations ----

    const reserve = (request: ReserveRequest): Effect.Effect<Reserved, ReserveError> =>
      Effect.gen(function* () {
        const common = yield* commonFor(request)
        const tag = request.tag === undefined ? untagged : yield* validateTag(request.tag, "tag")
        const preferred =
          request.preferred === undefined ? undefined : yield* Port.validate(request.preferred, "preferred")
        const [reserved] = yield* runAllocation("reserve", { ...common, wants: [{ tag, preferred }] })
        if (reserved === undefined) {
          return yield* new ReservationStoreError({
            operation: "reserve",
            cause: invalidRow("the allocation returned no reservation")
          })
        }
        return reserved
      }).pipe(Effect.provide(context))

    const reserveGroup = (request: GroupRequest): Effect.Effect<GroupReserved, ReserveError> =>
      Effect.gen(function* () {
        const common = yield* commonFor(request)
        const wants = yield* groupWants(request.services)
        const base = request.base === undefined ? undefined : yield* Port.validate(request.base, "base")
        const reservations = yield* runAllocation("reserveGroup", { ...common, wants, base })
        return { path: common.path, reservations }
      }).pipe(Effect.provide(context))

    const release = (request: ReleaseRequest) =>
      Effect.gen(function* () {
        const path = yield* Paths.anyPath("path", request.path)
        const cwd = request.cwd === request.path ? path : yield* Paths.anyPath("cwd", request.cwd)
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
        const where = sql.and([
          request.recursive === true ? underPath(path) : sql`path = ${path}`,
          ...(tag === undefined ? [] : [sql`tag = ${tag}`])
        ])
        const matching =
          request.dryRun === true
            ? Retry.run(
                Retry.read(
                  reservations(
                    sql`SELECT path, tag, port, project, task, created_at, last_used_at, ttl_ms, expires_at
                    FROM keel_reservations WHERE ${where}`
                  )
                )
              )
            : Retry.run(
                Retry.transaction(
                  Effect.zipRight(
                    Transaction.lock(allocationLock),
                    reservations(
                      sql`DELETE FROM keel_reservations WHERE ${where}
                      RETURNING path, tag, port, project, task, created_at, last_used_at, ttl_ms, expires_at`
                    )
                  )
                )
              )
        const released = yield* matching.pipe(storeErrors("release"))
        return { dryRun: request.dryRun === true, released: [...released].sort(byKey) }
      }).pipe(Effect.provide(context))

    const list = (request: ListRequest = {}) =>
      Effect.gen(function* () {
        const prefix =
          request.pathPrefix === undefined
            ? undefined
            : yield* Paths.anyPath("pathPrefix", request.pathPrefix)
        const tag = request.tag === undefined ? undefined : yield* validateTag(request.tag, "tag")
        const project = yield* optionalLabel(request.project, "project")
        const where = sql.and([
          ...(prefix === undefined ? [] : [underPath(prefix)]),
          ...(tag === undefined ? [] : [sql`tag = ${tag}`]),
          ...(project === undefined ? [] : [sql`project = ${project}`])
        ])
        return yield* Retry.run(
          Retry.read(
            reservations(
              sql`SELECT path, tag, port, project, task, created_at, last_used_at, ttl_ms, expires_at
                FROM keel_reservations WHERE ${where} ORDER BY ${keyOrder}`
            )
          )
        ).pipe(storeErrors("list"))
      }).pipe(Effect.provide(context))

    const show = (request: ShowRequest) =>
      Effect.gen(function* () {
        const path = yield* Paths.anyPath("path", request.path)
        const tag: Tag | undefined =
          request.tag === undefined ? undefined : yield* validateTag(request.tag, "tag")
        const found = yield* Retry.run(
          Retry.read(
            reservations(
              sql`SELECT path, tag, port, project, task, created_at, last_used_at, ttl_ms, expires_at
                FROM keel_reservations WHERE path = ${path} AND tag = ${tag ?? untagged}`
            )
          )
        ).pipe(storeErrors("show"))
        const reservation = found[0]
        if (reservation === undefined) return yield* new ReservationNotFound({ path, tag: tag ?? null })
        return reservation
      }).pipe(Effect.provide(context))

    const showPort = (request: ShowPortRequest) =>
      Effect.gen(function* () {
        const port = yield* Port.validate(request.port, "port")
        const found = yield* Retry.run(
          Retry.read(
            reservations(
              sql`SELECT path, tag, port, project, task, created_at, last_used_at, ttl_ms, expires_at
                FROM keel_reservations WHERE port = ${port}`
            )
          )
        ).pipe(storeErrors("showPort"))
        const reservation = found[0]
        if (reservation === undefined) return yield* new ReservationNotFound({ port })
        return reservation
      }).pipe(Effect.provide(context))

    const cleanup = (request: CleanupRequest = {}) =>
      Effect.gen(function* () {
        const unusedFor = yield* durationOf(request.unusedFor, "unusedFor")
        const now = yield* Clock.currentTimeMillis
        const all = yield* Retry.run(
          Retry.read(
            rows(
              sql`SELECT path, tag, port, project, task, created_at, last_used_at, ttl_ms, expires_at
                FROM keel_reservations ORDER BY port`
            )
          )
        ).pipe(storeErrors("cleanup"))
        const existsByPath = new Map<string, boolean>()
        const pathExists = (path: string) =>
          existsByPath.has(path)
            ? Effect.succeed(existsByPath.get(path) === true)
            : Effect.tap(Paths.exists(path), (answer) => Effect.sync(() => existsByPath.set(path, answer)))
        const reasonFor = (
          row: Row
        ): Effect.Effect<CleanupReason | undefined, never, FileSystem.FileSystem> => {
          if (request.expired !== false && isExpired(row, now)) return Effect.succeed("expired")
          if (unusedFor !== undefined && row.last_used_at <= now - unusedFor) return Effect.succeed("unused")
          if (request.missingPaths === false) return Effect.succeed(undefined)
          return Effect.map(pathExists(row.path), (exists) => (exists ? undefined : "missing-path"))
        }
        const candidates: Array<{ readonly row: Row; readonly reason: CleanupReason }> = []
        for (const row of all) {
          const reason = yield* reasonFor(row)
          if (reason !== undefined) candidates.push({ row, reason })
        }
        // Deleted inside one transaction, each re-checked there: a reservation used again since it
        // was read (its last use changed) or whose directory came back is kept.
        const remove = Effect.gen(function* () {
          yield* Transaction.lock(allocationLock)
          const removedNow: Array<{ readonly row: Row; readonly reason: CleanupReason }> = []
          for (const candidate of candidates) {
            if (candidate.reason === "missing-path" && (yield* Paths.exists(candidate.row.path))) continue
            const deleted = yield* run(
              sql`DELETE FROM keel_reservations
                WHERE path = ${candidate.row.path} AND tag = ${candidate.row.tag}
                  AND port = ${candidate.row.port} AND last_used_at = ${candidate.row.last_used_at}
                RETURNING port`
            )
            if (deleted.length > 0) removedNow.push(candidate)
          }
          return removedNow
        })
        const removedRows =
          request.dryRun === true
            ? candidates
            : yield* Retry.run(Retry.transaction(remove)).pipe(storeErrors("cleanup"))
        const removed = yield* Effect.forEach(removedRows, ({ row, reason }) =>
          Effect.map(toReservation(row), (reservation) => ({ reservation, reason }))
        ).pipe(storeErrors("cleanup"))
        return { dryRun: request.dryRun === true, removed }
      }).pipe(Effect.provide(context))

    return { config, reserve, reserveGroup, release, list, show, showPort, cleanup }
  })

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
