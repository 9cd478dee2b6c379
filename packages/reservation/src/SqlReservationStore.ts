/**
 * The registry's store on SQL: SQLite, libSQL, PGlite and PostgreSQL. Every statement is here;
 * every value is a bind parameter, and the SQL text that varies by dialect (the key order, the
 * locks, `FOR UPDATE`) is chosen once when the store is made.
 *
 * Every write is a plan (`@keel/sql` `Plan`) run by `Transaction.plan`: on better-sqlite3 the lock,
 * the reads, the choice and the writes run as ONE synchronous driver step between BEGIN IMMEDIATE
 * and COMMIT; elsewhere statement by statement in one transaction holding the allocation lock (a
 * transaction-scoped advisory lock on PostgreSQL and PGlite). The lowest free port is found by SQL
 * (the candidates are the range's start and the port after each held or avoided one), so no holder
 * row of the range is read into JavaScript. On PostgreSQL a new reservation of the common kind is
 * one autocommit statement instead (`keel_reservation_allocate_new`: the same locks, choice and
 * INSERT in one round trip; see `allocateNew`). A transaction is re-run only when its failure
 * proves it rolled back (`Retry.plan`), the one statement never after a failure that may come after
 * it ran (`Retry.autocommit`); database failures become `ReservationStoreError` here, once.
 *
 * A release of one path takes only that path's lock, which every allocation of the path takes too;
 * a migration (under the allocation lock) reads the rows it moves `FOR UPDATE`. So a release is
 * ordered before or after any write to its rows, never in between (`test/ReleaseRace.test.ts`).
 */
import * as Path from "@effect/platform/Path"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as Statement from "@effect/sql/Statement"
import * as Backend from "@keel/sql/Backend"
import * as DbError from "@keel/sql/DbError"
import * as Failure from "@keel/sql/Failure"
import * as Plan from "@keel/sql/Plan"
import * as Retry from "@keel/sql/Retry"
import * as Transaction from "@keel/sql/Transaction"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Rows from "./internal/rows.js"
import * as SqlAllocation from "./internal/sqlAllocation.js"
import * as SqlMigration from "./internal/sqlMigration.js"
import { ReservationStoreError } from "./ReservationError.js"
import {
  type Allocated,
  type Allocation,
  type Filter,
  type Oracle,
  ReservationStore,
  type Store,
  type Stored
} from "./ReservationStore.js"

/** The key of the lock that serializes every write on PostgreSQL (SQLite's BEGIN IMMEDIATE does it there). */
export const allocationLock = "keel-reservation-allocate"

/** What one allocation has found out so far. */
interface Learnt {
  readonly probed: Map<number, boolean>
  missing: ReadonlySet<string> | undefined
}

/** The store boundary: database failures become `ReservationStoreError { operation }`. */
const refail = (operation: string) =>
  Failure.refail((cause) => new ReservationStoreError({ operation, cause }))

/** Builds the store over the `SqlClient`, `Backend` and `Path` in context. */
export const make: Effect.Effect<Store, never, SqlClient.SqlClient | Backend.Backend | Path.Path> =
  Effect.gen(function* () {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const backend = yield* Backend.Backend
    const separator = (yield* Path.Path).sep

    // ---- dialect fragments, chosen once ----

    /** Path then tag, by code unit on every backend (PostgreSQL would otherwise use its locale). */
    const keyOrder = sql.onDialectOrElse({
      pg: () => sql`path COLLATE "C", tag COLLATE "C"`,
      orElse: () => sql`path, tag`
    })
    /**
     * The locks a write takes on PostgreSQL and PGlite (SQLite's BEGIN IMMEDIATE already excludes
     * every other writer): the allocation lock, which serializes every allocation, migration and
     * cleanup, and a lock per path, which an allocation takes for its own path (after the
     * allocation lock: `keel_reservation_lock_own`) and a release of one path takes alone
     * (`keel_reservation_release`) — so releases never wait for allocations of other paths, and a
     * release and an allocation of the same path happen one after the other.
     */
    const globalLock = Transaction.lockId(allocationLock)
    const pathLocks = new Map<string, number>()
    const pathLock = (path: string): number => {
      let id = pathLocks.get(path)
      if (id === undefined) {
        id = Transaction.lockId(`${allocationLock}:path:${path}`)
        if (pathLocks.size >= 10_000) pathLocks.clear()
        pathLocks.set(path, id)
      }
      return id
    }
    const lock: Statement.Statement<object> | undefined = sql.onDialectOrElse({
      pg: () => sql`SELECT pg_advisory_xact_lock(${globalLock})`,
      orElse: () => undefined
    })
    const columns = sql`path, tag, port, project, task, created_at, last_used_at, ttl_ms, expires_at`

    /** The path and everything below it, by whole segments (no LIKE: SQLite's is case-insensitive). */
    const underPath = (path: string) => {
      const prefix = path.endsWith(separator) ? path : `${path}${separator}`
      return sql`(path = ${path} OR substr(path, 1, ${[...prefix].length}) = ${prefix})`
    }

    const where = (filter: Filter) =>
      sql.and([
        ...(filter.path === undefined ? [] : [sql`path = ${filter.path}`]),
        ...(filter.under === undefined ? [] : [underPath(filter.under)]),
        ...(filter.tag === undefined ? [] : [sql`tag = ${filter.tag}`]),
        ...(filter.project === undefined ? [] : [sql`project = ${filter.project}`]),
        ...(filter.port === undefined ? [] : [sql`port = ${filter.port}`])
      ])

    /** Takes the allocation lock. */
    function* locked(): Generator<Plan.Instruction<never>, void, unknown> {
      if (lock !== undefined) yield* Plan.run(lock)
    }

    const planned = <A, E>(make: Plan.Make<A, E>) => Retry.run(Retry.plan(make, backend))

    const decoded = <A>(either: Either.Either<A, DbError.DbError>) =>
      Either.isRight(either) ? Effect.succeed(either.right) : Effect.fail(either.left)

    const forUpdate = sql.onDialectOrElse({ pg: () => sql` FOR UPDATE`, orElse: () => sql`` })
    const lockedOwn = sql.onDialectOrElse({
      pg: () => (path: string, tags: ReadonlyArray<string>) =>
        sql<Stored>`SELECT ${columns}
          FROM keel_reservation_lock_own(${globalLock}, ${pathLock(path)}, ${path}, ${tags})`,
      orElse: () => undefined
    })
    const lowestFreeLive = sql.onDialectOrElse({
      pg: () => (range: { readonly min: number; readonly max: number }, now: number) =>
        sql<{
          port: number | null
        }>`SELECT keel_reservation_lowest_free(${range.min}, ${range.max}, ${now}) AS port`,
      orElse: () => undefined
    })
    const allocation = SqlAllocation.make(sql, {
      columns,
      lockedOwn,
      lowestFreeLive,
      parameterLimit: backend.parameterLimit
    })
    const migration = SqlMigration.make(sql, { columns, locked, forUpdate, under: underPath })

    const plan = Transaction.planOn(backend)

    /**
     * PostgreSQL and PGlite: a new reservation of the common kind (`SqlAllocation.lowestFreeOnly`)
     * as ONE statement — the locks, the check that the key holds nothing, the lowest free port and
     * the INSERT (`keel_reservation_allocate_new`, migration 3). On PostgreSQL it runs in autocommit:
     * one round trip instead of five, the allocation lock held only while it runs; on PGlite (one
     * session, in-process) in a transaction of its own (`Transaction.autocommitOn`). No row: nothing
     * was written (the key holds a reservation, no port is free) and the whole plan decides.
     * Undefined on the SQLite dialect, where the plan is one driver step already.
     */
    const allocateNew = sql.onDialectOrElse({
      pg: () => (a: Allocation, tag: string, now: number) => {
        const labels = SqlAllocation.newLabels(a)
        return sql<Stored>`SELECT ${columns} FROM keel_reservation_allocate_new(${globalLock}, ${pathLock(a.path)},
          ${a.path}, ${tag}, ${a.range.min}, ${a.range.max}, ${now}, ${labels.project}, ${labels.task},
          ${a.ttlMs ?? null}, ${a.ttlMs === undefined ? null : now + a.ttlMs})`
      },
      orElse: () => undefined
    })

    /** What the plan asked to know, found out: ports probed, or which paths are gone. */
    const learn = (asked: Exclude<Allocated, { _tag: "Allocated" }>, oracle: Oracle, known: Learnt) =>
      Effect.gen(function* () {
        if (asked._tag === "CheckPaths") {
          const gone = new Set<string>()
          for (const path of asked.paths) if (!(yield* oracle.exists(path))) gone.add(path)
          known.missing = gone
        } else {
          for (const port of asked.ports) {
            if (!known.probed.has(port)) known.probed.set(port, yield* oracle.isOccupied(port))
          }
        }
      })

    const allocate: Store["allocate"] = (a, oracle, now) => {
      const want = SqlAllocation.lowestFreeOnly(a)
      if (allocateNew === undefined || want === undefined) return allocatePlanned(a, oracle, now)
      return Retry.run(Retry.autocommit(allocateNew(a, want.tag, now), backend)).pipe(
        Effect.flatMap((raw) => decoded(Rows.storedRows(raw))),
        refail(a.operation),
        Effect.flatMap(([row]) =>
          row === undefined
            ? allocatePlanned(a, oracle, now)
            : Effect.succeed([{ row, outcome: "created" as const }])
        )
      )
    }

    /** An allocation by the plan (see the module comment). */
    const allocatePlanned: Store["allocate"] = (a, oracle, now) => {
      const known: Learnt = { probed: new Map(), missing: undefined }
      // First the plan alone (one driver step on better-sqlite3); with occupancy checked it begins
      // only when it needs no probe (a refresh), else it stops before BEGIN having locked nothing.
      const first = Retry.run(
        Retry.plan(allocation(a, known, now, a.checkOccupancy), backend, {
          begin: a.checkOccupancy ? "lazy" : "eager"
        })
      )
      // Then, when it needs to know more: the plan again in one transaction that probes under the
      // lock as ports come up (each attempt a savepoint), as the whole allocation always did.
      const withProbes = Retry.run(
        Retry.transaction(
          Effect.gen(function* () {
            for (;;) {
              const attempt = yield* plan(allocation(a, known, now, false))
              if (attempt._tag === "Allocated") return attempt.reservations
              yield* learn(attempt, oracle, known)
            }
          })
        )
      ).pipe(Effect.provideService(Backend.Backend, backend))
      return first.pipe(
        Effect.flatMap((attempt) => {
          if (attempt._tag === "Allocated") return Effect.succeed(attempt.reservations)
          return attempt._tag === "CheckPaths"
            ? Effect.zipRight(learn(attempt, oracle, known), withProbes)
            : withProbes
        }),
        Effect.catchIf(
          (error): error is SqlAllocation.DryRun => error instanceof SqlAllocation.DryRun,
          (dry) => Effect.succeed(dry.allocated._tag === "Allocated" ? dry.allocated.reservations : [])
        ),
        refail(a.operation)
      )
    }

    // ---- reads and removals ----

    const find: Store["find"] = (filter, operation) =>
      Retry.run(
        Retry.read(
          DbError.refine(
            sql`SELECT ${columns} FROM keel_reservations WHERE ${where(filter)} ORDER BY ${keyOrder}`
          )
        )
      ).pipe(
        Effect.flatMap((raw) => decoded(Either.flatMap(Rows.storedRows(raw), Rows.toReservations))),
        refail(operation)
      )

    /**
     * The release of one path (all its tags, or one) on PostgreSQL and PGlite as ONE statement: the
     * `keel_reservation_release` function takes the path's lock, then deletes (migration 2; an
     * allocation takes its locks and reads its own rows with `keel_reservation_lock_own`). It never
     * waits for allocations of other paths, and is ordered before or after one of its own path
     * (test/ReleaseRace.test.ts). Any other release (under a directory, by project or port) takes
     * the allocation lock in a transaction, which orders it against every allocation.
     */
    const releasePath = sql.onDialectOrElse({
      pg: () => (path: string, tag: string | undefined) =>
        sql<Stored>`SELECT ${columns} FROM keel_reservation_release(${pathLock(path)}, ${path}, ${tag ?? null})`,
      orElse: () => undefined
    })

    const remove: Store["remove"] = (filter) => {
      const onePath =
        filter.under === undefined && filter.project === undefined && filter.port === undefined
          ? filter.path
          : undefined
      const deleted =
        releasePath !== undefined && onePath !== undefined
          ? Retry.run(Retry.autocommit(releasePath(onePath, filter.tag), backend))
          : removeLocked(filter, onePath)
      return deleted.pipe(
        Effect.flatMap((raw) => decoded(Either.flatMap(Rows.storedRows(raw), Rows.toReservations))),
        refail("release")
      )
    }

    /**
     * The release of one key or of one path's keys, as templates of their values (compiled once on
     * better-sqlite3, bound per release: the write lock is not held while SQL is built).
     */
    const deleteKey = (path: string, tag: string) =>
      sql<Stored>`DELETE FROM keel_reservations WHERE path = ${path} AND tag = ${tag} RETURNING ${columns}`
    const deletePath = (path: string) =>
      sql<Stored>`DELETE FROM keel_reservations WHERE path = ${path} RETURNING ${columns}`

    /** `filter`'s release under the allocation lock; `onePath` when it names one path and nothing else. */
    const removeLocked = (filter: Filter, onePath: string | undefined) =>
      planned(function* (): Plan.Plan<ReadonlyArray<Stored>> {
        yield* locked()
        if (onePath !== undefined) {
          return filter.tag === undefined
            ? yield* Plan.bound(deletePath, [onePath])
            : yield* Plan.bound(deleteKey, [onePath, filter.tag])
        }
        return yield* Plan.rows(
          sql<Stored>`DELETE FROM keel_reservations WHERE ${where(filter)} RETURNING ${columns}`
        )
      })

    const all: Store["all"] = (operation) =>
      Retry.run(Retry.read(DbError.refine(sql`SELECT ${columns} FROM keel_reservations ORDER BY port`))).pipe(
        Effect.flatMap((raw) => decoded(Rows.storedRows(raw))),
        refail(operation)
      )

    const removeUnchanged: Store["removeUnchanged"] = (rows, operation) =>
      planned(function* () {
        yield* locked()
        const removed: Array<Stored> = []
        for (const row of rows) {
          const deleted = yield* Plan.rows(
            sql<{ port: number }>`DELETE FROM keel_reservations
              WHERE path = ${row.path} AND tag = ${row.tag}
                AND port = ${row.port} AND last_used_at = ${row.last_used_at}
              RETURNING port`
          )
          if (deleted.length > 0) removed.push(row)
        }
        return removed
      }).pipe(refail(operation))

    const migrate: Store["migrate"] = (m) =>
      planned(migration(m)).pipe(
        Effect.catchIf(
          (error): error is SqlMigration.DryMigration => error instanceof SqlMigration.DryMigration,
          (dry) => Effect.succeed(dry.result)
        ),
        refail("migrate")
      )

    return { allocate, find, remove, all, removeUnchanged, migrate }
  })

/** The SQL store in context. */
export const layer: Layer.Layer<ReservationStore, never, SqlClient.SqlClient | Backend.Backend | Path.Path> =
  Layer.effect(ReservationStore, make)
