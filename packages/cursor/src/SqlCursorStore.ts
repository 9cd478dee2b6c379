/**
 * The cursor storage on SQL: SQLite, libSQL, PGlite and PostgreSQL. Every statement of the cursor
 * store is here; every value is a bind parameter, and the only SQL text that varies is chosen once,
 * per dialect, when the storage is made.
 *
 * - Writes are plans (`@keel/sql` `Plan`): on SQLite (better-sqlite3) BEGIN IMMEDIATE, the
 *   statements and COMMIT run as one synchronous step of the driver; elsewhere statement by
 *   statement in one transaction. A flush is one statement per chunk: a multi-row monotonic upsert
 *   on SQLite, and on PostgreSQL one `INSERT … SELECT … FROM json_to_recordset(…) ON CONFLICT …
 *   WHERE excluded.position_key > …` per chunk (one round trip, one statement text whatever the
 *   chunk's size). Peers it did not advance are read back in the same transaction.
 * - A write is never part of the caller's transaction (memory moves after COMMIT, which must be a
 *   real one): inside one it runs as `Transaction.independent`, which fails at once with
 *   `SessionInUse` on a single-session backend instead of waiting for the session forever.
 * - A `json-map` namespace is compared in the process: its write transaction locks the namespace
 *   (BEGIN IMMEDIATE on SQLite, a transaction-scoped advisory lock on PostgreSQL), reads the stored
 *   positions, and writes only the ones that move forward.
 * - Database failures become `CursorStoreError { operation }` here, once (`Failure.refail`).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import * as Backend from "@keel/sql/Backend"
import * as Failure from "@keel/sql/Failure"
import * as Plan from "@keel/sql/Plan"
import * as Retry from "@keel/sql/Retry"
import * as Transaction from "@keel/sql/Transaction"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { CursorStoreError, Fenced, KindConflict } from "./CursorError.js"
import * as CursorStore from "./CursorStore.js"
import type * as Peer from "./Peer.js"
import type * as Position from "./Position.js"
import type * as PositionKind from "./PositionKind.js"

/** A row of `keel_cursors` as the driver returns it (`updated_at` is a string for a pg BIGINT). */
interface CursorRow {
  readonly peer: string
  readonly position: string
  readonly position_key: string
  readonly updated_at: number | string | bigint
}

/** The table's own rows: mapped, not decoded (the store wrote them; its CHECKs hold them in shape). */
const stored = (row: CursorRow): CursorStore.Stored => ({
  peer: row.peer as Peer.Peer,
  position: row.position as Position.Any,
  key: row.position_key,
  updatedAt: Number(row.updated_at)
})

/**
 * The store boundary: database failures, a fenced writer and a kind conflict become
 * `CursorStoreError { operation }`.
 */
const boundary = (operation: string, namespace: string) => {
  const wrap = (cause: Failure.Cause | Fenced | KindConflict) =>
    new CursorStoreError({ operation, namespace, cause })
  return <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Failure.refail(wrap)(
      Effect.catchIf(
        effect,
        (error): error is Extract<E, Fenced | KindConflict> =>
          error instanceof Fenced || error instanceof KindConflict,
        (error) => Effect.fail(wrap(error))
      )
    )
}

/** Cursors per statement: five parameters each, below the backend's limit. */
const perStatement = (backend: Backend.Backend): number => Math.max(1, Math.floor(backend.parameterLimit / 5))

/** Builds the storage over the `SqlClient` and `Backend` in context. */
export const make: Effect.Effect<CursorStore.Storage, never, SqlClient.SqlClient | Backend.Backend> =
  Effect.gen(function* () {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const backend = yield* Backend.Backend
    const pg = backend.dialect === "pg"
    const chunkSize = perStatement(backend)
    /** PostgreSQL runs a lone statement in autocommit: one round trip instead of three. */
    const oneRoundTrip = backend.kind === "postgres"
    const plan = Transaction.planOn(backend)
    const planNow = Transaction.planNow(backend)

    // ---- statements -----------------------------------------------------------------------------

    const columns = sql`(namespace, peer, position, position_key, updated_at)`
    const rowsOf = (namespace: string, writes: ReadonlyArray<CursorStore.Write>, now: number) =>
      writes.map((write) => ({
        namespace,
        peer: write.peer,
        position: write.position,
        position_key: write.key,
        updated_at: now
      }))
    /** The rows to insert: VALUES on SQLite (and for one row anywhere), one JSON parameter on PostgreSQL. */
    const source = (namespace: string, writes: ReadonlyArray<CursorStore.Write>, now: number) =>
      pg && writes.length > 1
        ? sql`${columns} SELECT ${namespace}, t.peer, t.position, t.position_key, ${now}
              FROM json_to_recordset(CAST(${JSON.stringify(
                writes.map((write) => ({
                  peer: write.peer,
                  position: write.position,
                  position_key: write.key
                }))
              )} AS json)) AS t(peer TEXT, position TEXT, position_key TEXT)`
        : sql`${sql.insert(rowsOf(namespace, writes, now))}`
    const set = sql`DO UPDATE SET position = excluded.position, position_key = excluded.position_key,
      updated_at = excluded.updated_at`
    /** Writes each position that is later than the stored one (compared by sort key). */
    const upsertIfLater = (namespace: string, writes: ReadonlyArray<CursorStore.Write>, now: number) =>
      sql`INSERT INTO keel_cursors ${source(namespace, writes, now)}
        ON CONFLICT (namespace, peer) ${set}
        WHERE excluded.position_key > keel_cursors.position_key`
    /** `upsertIfLater`, returning the peers it wrote. */
    const upsertForward = (namespace: string, writes: ReadonlyArray<CursorStore.Write>, now: number) =>
      sql<{ peer: string }>`${upsertIfLater(namespace, writes, now)} RETURNING peer`
    const upsertAlways = (namespace: string, writes: ReadonlyArray<CursorStore.Write>, now: number) =>
      sql`INSERT INTO keel_cursors ${source(namespace, writes, now)} ON CONFLICT (namespace, peer) ${set}`
    /**
     * One write of `upsert` (`upsertIfLater` / `upsertAlways`) as a `Plan.eachCount` template: every
     * value is an argument, so the template compiles once per store rather than once per flush.
     */
    const oneWrite =
      (upsert: typeof upsertIfLater) =>
      (namespace: string, peer: Peer.Peer, position: Position.Any, key: string, now: number) =>
        upsert(namespace, [{ peer, position, key }], now)
    const oneIfLater = oneWrite(upsertIfLater)
    const oneAlways = oneWrite(upsertAlways)
    const selectColumns = sql`SELECT peer, position, position_key, updated_at FROM keel_cursors`
    const selectPeers = (namespace: string, peers: ReadonlyArray<string>) =>
      sql<CursorRow>`${selectColumns} WHERE namespace = ${namespace} AND ${sql.in("peer", peers)}`
    const selectAll = (namespace: string) =>
      sql<CursorRow>`${selectColumns} WHERE namespace = ${namespace} ORDER BY peer`
    const forShare = pg ? sql` FOR SHARE` : sql``
    const selectFence = (namespace: string) =>
      sql<{ epoch: number | string }>`SELECT epoch FROM keel_cursor_namespaces
        WHERE namespace = ${namespace}${forShare}`
    /** Serializes the in-process comparisons of a namespace (SQLite: BEGIN IMMEDIATE already does). */
    const lockNamespace = (namespace: string): Statement.Statement<object> | undefined =>
      pg ? sql`SELECT pg_advisory_xact_lock(hashtextextended(${`keel_cursor:${namespace}`}, 0))` : undefined
    const selectDeclaration = (namespace: string) =>
      sql<{ kind: PositionKind.Kind; epoch: number | string }>`SELECT kind, epoch
        FROM keel_cursor_namespaces WHERE namespace = ${namespace}`
    const insertDeclaration = (namespace: string, kind: PositionKind.Kind) =>
      sql`INSERT INTO keel_cursor_namespaces (namespace, kind, epoch)
        VALUES (${namespace}, ${kind}, 0) ON CONFLICT (namespace) DO NOTHING`
    const parameterLimit = {
      parameterLimit: backend.parameterLimit,
      parametersPerItem: 1,
      fixedParameters: 2
    }

    // ---- plans ----------------------------------------------------------------------------------

    /**
     * Declares the namespace with `kind` unless it is declared; aborts with `KindConflict` when it
     * holds another kind. Nothing when `kind` is undefined (known to be declared).
     */
    function* declareIn(namespace: string, kind: PositionKind.Kind | undefined) {
      if (kind === undefined) return
      yield* Plan.run(insertDeclaration(namespace, kind))
      const [row] = yield* Plan.rows(selectDeclaration(namespace))
      if (row !== undefined && row.kind !== kind)
        yield* Plan.abort(new KindConflict({ namespace, declared: row.kind, wanted: kind }))
    }

    /** Aborts with `Fenced` unless the namespace's fence is still `fence` (nothing when unfenced). */
    function* checkFence(namespace: string, fence: number | undefined) {
      if (fence === undefined) return
      const [row] = yield* Plan.rows(selectFence(namespace))
      const current = Number(row?.epoch ?? 0)
      if (current !== fence) yield* Plan.abort(new Fenced({ namespace, epoch: fence, current }))
    }

    function* readBack(namespace: string, peers: ReadonlyArray<string>) {
      const rows = yield* Plan.chunked(peers, parameterLimit, (chunk) => selectPeers(namespace, chunk))
      return rows.map(stored)
    }

    /**
     * Writes `writes` (each only if later than the stored position, with `onlyLater`) and returns
     * the peers it wrote. On the synchronous driver: one prepared statement run per row, its
     * change count read from the driver — on better-sqlite3 that beats a multi-row statement (no
     * text of thousands of rows to build, no RETURNING rows to buffer); elsewhere one multi-row
     * statement per chunk, the written peers from `RETURNING peer`.
     */
    function* upsert(
      namespace: string,
      writes: ReadonlyArray<CursorStore.Write>,
      now: number,
      onlyLater: boolean
    ): Plan.Plan<ReadonlySet<string>, never> {
      const statement = onlyLater ? upsertIfLater : upsertAlways
      if (yield* Plan.synchronous()) {
        const changed = yield* Plan.eachCount(
          onlyLater ? oneIfLater : oneAlways,
          writes.map((write) => [namespace, write.peer, write.position, write.key, now] as const)
        )
        return new Set(writes.filter((_, i) => (changed[i] ?? 0) > 0).map((write) => write.peer))
      }
      const written = new Set<string>()
      for (const chunk of chunks(writes)) {
        if (!onlyLater) yield* Plan.run(statement(namespace, chunk, now))
        else for (const row of yield* Plan.rows(upsertForward(namespace, chunk, now))) written.add(row.peer)
      }
      return onlyLater ? written : new Set(writes.map((write) => write.peer))
    }

    /** Chunks of `writes`, each one statement. */
    const chunks = <A>(items: ReadonlyArray<A>): ReadonlyArray<ReadonlyArray<A>> => {
      if (items.length <= chunkSize) return items.length === 0 ? [] : [items]
      const all: Array<ReadonlyArray<A>> = []
      for (let start = 0; start < items.length; start += chunkSize)
        all.push(items.slice(start, start + chunkSize))
      return all
    }

    function* persistPlan(
      namespace: string,
      writes: ReadonlyArray<CursorStore.Write>,
      now: number,
      rules: PositionKind.Ordering,
      guard: Omit<CursorStore.Guard, "policy">
    ): Plan.Plan<CursorStore.Persisted, Fenced | KindConflict> {
      yield* declareIn(namespace, guard.declare)
      yield* checkFence(namespace, guard.fence)
      if (rules.inDatabase) {
        const advanced = yield* upsert(namespace, writes, now, true)
        if (advanced.size === writes.length) return { advanced, others: [] }
        const rest = writes.filter((write) => !advanced.has(write.peer)).map((write) => write.peer)
        return { advanced, others: yield* readBack(namespace, rest) }
      }
      const lock = lockNamespace(namespace)
      if (lock !== undefined) yield* Plan.run(lock)
      const held = new Map(
        (yield* readBack(
          namespace,
          writes.map((write) => write.peer)
        )).map((row) => [row.peer, row])
      )
      const forward = writes.filter((write) => {
        const row = held.get(write.peer)
        return row === undefined || rules.compare(write, row) === "after"
      })
      const advanced = yield* upsert(namespace, forward, now, false)
      const others = writes.flatMap((write) => {
        const row = held.get(write.peer)
        return advanced.has(write.peer) || row === undefined ? [] : [row]
      })
      return { advanced, others }
    }

    /** True while the caller has a transaction open on this backend: then a write is its own anyway. */
    const callerTransaction: Effect.Effect<boolean> = Effect.contextWith((context: Context.Context<never>) =>
      Option.exists(Context.getOption(context, Transaction.Active), (active) => active.backend === backend)
    )

    /**
     * Runs a write plan as its own transaction under `policy`: the synchronous driver step when
     * the caller has none open, `Transaction.independent` when it has.
     */
    const own = <A, E>(make: Plan.Make<A, E>, policy: Retry.Policy, options?: Transaction.PlanOptions) =>
      Effect.flatMap(callerTransaction, (inside) =>
        inside
          ? Retry.run(Retry.independent(plan(make)), policy).pipe(
              Effect.provideService(Backend.Backend, backend)
            )
          : Retry.run(Retry.plan(make, backend, options), policy)
      )

    // ---- operations -----------------------------------------------------------------------------

    const declared = (row: { kind: PositionKind.Kind; epoch: number | string }): CursorStore.Declared => ({
      kind: row.kind,
      epoch: Number(row.epoch)
    })

    const declaration: CursorStore.Storage["declaration"] = (namespace) =>
      Retry.run(
        Retry.read(
          Effect.map(selectDeclaration(namespace), ([row]) => Option.map(Option.fromNullable(row), declared))
        )
      ).pipe(boundary("declare", namespace))

    const acquireFence: CursorStore.Storage["acquireFence"] = (namespace, kind, policy) =>
      own<CursorStore.Declared, never>(function* () {
        yield* Plan.run(insertDeclaration(namespace, kind))
        const [row] = yield* Plan.rows(
          sql<{ kind: PositionKind.Kind; epoch: number | string }>`UPDATE keel_cursor_namespaces
            SET epoch = epoch + 1 WHERE namespace = ${namespace} RETURNING kind, epoch`
        )
        return row === undefined ? { kind, epoch: 0 } : declared(row)
      }, policy).pipe(boundary("acquireFence", namespace))

    const read: CursorStore.Storage["read"] = (namespace, peers) =>
      Retry.run(
        Retry.read(
          peers === undefined
            ? Effect.map(selectAll(namespace), (rows) => rows.map(stored))
            : Effect.map(
                Effect.forEach(chunksOf(peers, backend.parameterLimit - 2), (chunk) =>
                  selectPeers(namespace, chunk)
                ),
                (rows) => rows.flat().map(stored)
              )
        )
      ).pipe(boundary("read", namespace))

    /**
     * A monotonic write that is one statement on its own (one chunk, compared in the database, no
     * fence to check, the namespace declared): in autocommit on PostgreSQL, one round trip. The
     * peers it did not advance are read back after it (a later position read back is adopted the
     * same way: memory never moves backwards).
     */
    const persistAlone = (
      namespace: string,
      writes: ReadonlyArray<CursorStore.Write>,
      now: number,
      policy: Retry.Policy
    ): Effect.Effect<CursorStore.Persisted, SqlError | Transaction.TransactionError> =>
      Effect.gen(function* () {
        const rows = yield* Retry.run(
          Retry.autocommit(upsertForward(namespace, writes, now), backend),
          policy
        )
        const advanced = new Set(rows.map((row) => row.peer))
        if (advanced.size === writes.length) return { advanced, others: [] }
        const rest = writes.filter((write) => !advanced.has(write.peer)).map((write) => write.peer)
        const others = yield* Retry.run(Retry.read(selectPeers(namespace, rest)))
        return { advanced, others: others.map(stored) }
      })

    const persist: CursorStore.Storage["persist"] = (namespace, writes, now, rules, guard) =>
      Effect.flatMap(
        callerTransaction,
        (
          inside
        ): Effect.Effect<
          CursorStore.Persisted,
          SqlError | Transaction.TransactionError | Transaction.SessionInUse | Fenced | KindConflict
        > =>
          oneRoundTrip &&
          !inside &&
          rules.inDatabase &&
          guard.fence === undefined &&
          guard.declare === undefined &&
          writes.length > 0 &&
          writes.length <= chunkSize
            ? persistAlone(namespace, writes, now, guard.policy)
            : own(() => persistPlan(namespace, writes, now, rules, guard), guard.policy)
      ).pipe(boundary("flush", namespace))

    const persistNow: CursorStore.Storage["persistNow"] =
      planNow === undefined
        ? undefined
        : (namespace, writes, now, rules) =>
            Option.map(
              planNow(() =>
                persistPlan(namespace, writes, now, rules, { fence: undefined, declare: undefined })
              ),
              boundary("flush", namespace)
            )

    const overwrite: CursorStore.Storage["overwrite"] = (namespace, writes, now, guard) =>
      own<void, Fenced | KindConflict>(function* () {
        yield* declareIn(namespace, guard.declare)
        yield* checkFence(namespace, guard.fence)
        yield* upsert(namespace, writes, now, false)
      }, guard.policy).pipe(boundary("reset", namespace))

    const remove: CursorStore.Storage["remove"] = (namespace, peers, guard) =>
      own(function* () {
        yield* checkFence(namespace, guard.fence)
        const rows = yield* Plan.chunked(
          peers,
          parameterLimit,
          (chunk) =>
            sql<{ peer: string }>`DELETE FROM keel_cursors
              WHERE namespace = ${namespace} AND ${sql.in("peer", chunk)} RETURNING peer`
        )
        return rows.map((row) => row.peer as Peer.Peer)
      }, guard.policy).pipe(boundary("delete", namespace))

    const idle = (namespace: string, before: number) =>
      sql<{ peer: string }>`SELECT peer FROM keel_cursors
        WHERE namespace = ${namespace} AND updated_at < ${before} ORDER BY peer`

    const expire: CursorStore.Storage["expire"] = (namespace, before, options) => {
      // Peers of the table's own rows (written through `Peer.parse`).
      const pick = (rows: ReadonlyArray<{ peer: string }>) =>
        rows.map((row) => row.peer as Peer.Peer).filter((peer) => !options.keep.has(peer))
      if (options.dryRun) {
        return Retry.run(Retry.read(Effect.map(idle(namespace, before), pick))).pipe(
          boundary("expire", namespace)
        )
      }
      return own(function* () {
        yield* checkFence(namespace, options.guard.fence)
        const candidates = pick(yield* Plan.rows(idle(namespace, before)))
        const rows = yield* Plan.chunked(
          candidates,
          { ...parameterLimit, fixedParameters: 3 },
          (chunk) =>
            sql<{ peer: string }>`DELETE FROM keel_cursors
              WHERE namespace = ${namespace} AND updated_at < ${before} AND ${sql.in("peer", chunk)}
              RETURNING peer`
        )
        return rows.map((row) => row.peer as Peer.Peer).sort()
      }, options.guard.policy).pipe(boundary("expire", namespace))
    }

    const writeInTransaction: CursorStore.Storage["writeInTransaction"] = (
      namespace,
      write,
      now,
      rules,
      guard
    ) =>
      plan(function* () {
        const persisted = yield* persistPlan(namespace, [write], now, rules, guard)
        return persisted.advanced.size > 0
      }).pipe(boundary("setInTransaction", namespace))

    const checkpoint: CursorStore.Storage["checkpoint"] = (namespace) =>
      backend.dialect === "pg"
        ? Effect.succeed({
            _tag: "NoCheckpoint",
            reason: "PostgreSQL checkpoints its own WAL; a committed flush is already durable"
          })
        : !backend.singleSession
          ? Effect.succeed({ _tag: "NoCheckpoint", reason: "a remote libSQL server manages its own WAL" })
          : backend.kind === "turso"
            ? Effect.succeed({ _tag: "NoCheckpoint", reason: "the Turso engine checkpoints its own log" })
            : Retry.run(
                Retry.read(
                  sql<{ busy: number; log: number; checkpointed: number }>`PRAGMA wal_checkpoint(TRUNCATE)`
                )
              ).pipe(
                Effect.map(
                  ([row]): CursorStore.Checkpointed => ({
                    _tag: "WalCheckpoint",
                    busy: Number(row?.busy ?? 0) !== 0,
                    walFrames: Number(row?.log ?? -1),
                    checkpointedFrames: Number(row?.checkpointed ?? -1)
                  })
                ),
                boundary("checkpoint", namespace)
              )

    return {
      declaration,
      acquireFence,
      read,
      persist,
      persistNow,
      overwrite,
      remove,
      expire,
      writeInTransaction,
      checkpoint
    }
  })

/** `items` in slices of at most `size`. */
const chunksOf = <A>(items: ReadonlyArray<A>, size: number): ReadonlyArray<ReadonlyArray<A>> => {
  const all: Array<ReadonlyArray<A>> = []
  for (let start = 0; start < items.length; start += size) all.push(items.slice(start, start + size))
  return all
}

/** The SQL storage as a layer over the `SqlClient` and `Backend` in context. */
export const layer: Layer.Layer<CursorStore.CursorStore, never, SqlClient.SqlClient | Backend.Backend> =
  Layer.effect(CursorStore.CursorStore, make)
