/**
 * The cursor store: the last applied stream position per peer, durable across restarts, that
 * never moves backwards.
 *
 * `set` only touches memory (and marks the peer dirty); a background fiber persists every dirty
 * cursor each `flushInterval` in one transaction, and the store's release flushes a last time and
 * checkpoints. The write is a monotonic upsert — it replaces a stored position only with a greater
 * one — so it is idempotent: the flush is retried through `@keel/sql`'s policy, and a stale write
 * from an old process is ignored and counted. A flush that still fails keeps its peers dirty.
 * After a crash a consumer therefore re-reads at most what it applied in the last flush interval
 * (plus the time one flush takes) and never skips any of the stream.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Backend, Batch, DbError, Migrations, Retry, Telemetry, Transaction } from "@keel/sql"
import {
  Cause,
  Clock,
  type ConfigError,
  Context,
  Duration,
  Effect,
  Config as EffectConfig,
  Either,
  HashMap,
  Layer,
  Metric,
  Option,
  Ref,
  Schedule,
  ScheduleDecision,
  Schema,
  type Scope
} from "effect"
import {
  CursorStoreError,
  FlushFailed,
  InvalidConfig,
  type InvalidPeer,
  type InvalidPosition,
  StoreClosed,
  type StoreFailure
} from "./CursorError.js"
import { migrations as cursorMigrations } from "./migrations/index.js"
import * as Peer from "./Peer.js"
import * as Position from "./Position.js"

/** The store's migrations (`keel_cursor_migrations`), for `keel db migrate`. `layer` applies them at start. */
export const migrations: Migrations.MigrationSet = cursorMigrations

// ---------------------------------------------------------------------------------------------
// Schemas of what the service returns (they cross the CLI and HTTP boundaries)
// ---------------------------------------------------------------------------------------------

/** One cursor as `getAll` reports it: the latest known position, what is stored, and whether more is pending. */
export const Cursor = Schema.Struct({
  peer: Peer.Peer,
  /** The latest position known: the greater of this process's memory and the database. */
  position: Position.Position,
  /** The position in the database, or null when none is stored yet. */
  stored: Schema.NullOr(Position.Position),
  /** When the stored position last advanced (epoch milliseconds), or null. */
  updatedAt: Schema.NullOr(Schema.Number),
  /** True when memory holds a position newer than the stored one, waiting for a flush. */
  pending: Schema.Boolean
})

/** One cursor as `getAll` reports it. */
export type Cursor = typeof Cursor.Type

/**
 * What a `set` did: `advanced` (memory moved forward and the peer is dirty), `unchanged` (the
 * position equals the one held) or `stale` (older than the one held: ignored and counted).
 */
export const SetOutcome = Schema.Literal("advanced", "unchanged", "stale")

/** What a `set` did. */
export type SetOutcome = typeof SetOutcome.Type

/** The result of a `set`: its outcome and the position now held for the peer. */
export const SetResult = Schema.Struct({
  peer: Peer.Peer,
  outcome: SetOutcome,
  /** The position held in memory after the call (the given one unless it was stale). */
  position: Position.Position
})

/** The result of a `set`. */
export type SetResult = typeof SetResult.Type

/** A cursor whose flushed position was older than the stored one: the write was ignored. */
export const StaleWrite = Schema.Struct({
  peer: Peer.Peer,
  /** The position this process tried to store. */
  position: Position.Position,
  /** The greater position already stored (by another process, or an earlier reset). */
  stored: Position.Position
})

/** A cursor whose flushed position was older than the stored one. */
export type StaleWrite = typeof StaleWrite.Type

/** The result of a `flush`. */
export const FlushResult = Schema.Struct({
  /** Dirty cursors this flush handled: persisted + already stored + stale. */
  flushed: Schema.Number,
  /** Cursors written: inserted, or advanced over an older stored position. */
  persisted: Schema.Number,
  /** Cursors whose position was older than the stored one: ignored, memory raised to the stored one. */
  stale: Schema.Array(StaleWrite)
})

/** The result of a `flush`. */
export type FlushResult = typeof FlushResult.Type

/** What `checkpoint` did: a WAL checkpoint on SQLite/libSQL, or nothing (with the reason). */
export const Checkpoint = Schema.Union(
  Schema.TaggedStruct("WalCheckpoint", {
    /** True when readers kept the checkpoint from completing; the WAL was not fully truncated. */
    busy: Schema.Boolean,
    /** The WAL's frames as SQLite reports them afterwards (0 once truncated; -1 without WAL). */
    walFrames: Schema.Number,
    /** The frames SQLite reports as checkpointed (0 once truncated; -1 without WAL). */
    checkpointedFrames: Schema.Number
  }),
  Schema.TaggedStruct("NoCheckpoint", { reason: Schema.String })
)

/** What `checkpoint` did. */
export type Checkpoint = typeof Checkpoint.Type

/** Counters of one store instance since it started (the `Metric`s aggregate every instance). */
export const Stats = Schema.Struct({
  namespace: Peer.Namespace,
  /** Cursors set in memory and not yet persisted. */
  dirty: Schema.Number,
  /** Flushes that committed (a flush with nothing dirty does not touch the database and is not counted). */
  flushes: Schema.Number,
  /** Flushes that failed after the retry policy; their cursors stayed dirty. */
  failedFlushes: Schema.Number,
  /** Cursors written by flushes. */
  rowsFlushed: Schema.Number,
  /** Flush transactions re-run after a transient failure. */
  retries: Schema.Number,
  /** `set` calls ignored because the position was older than the one held in memory. */
  staleSets: Schema.Number,
  /** Flushed cursors ignored because the database held a newer position. */
  staleFlushes: Schema.Number,
  /** How long the last flush took, in milliseconds, or null before the first. */
  lastFlushMillis: Schema.NullOr(Schema.Number)
})

/** Counters of one store instance. */
export type Stats = typeof Stats.Type

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

/**
 * The store's metrics, each tagged with `namespace`: dirty cursors (gauge), flushes (counter,
 * tagged `outcome` = `committed` | `failed`), rows flushed, flush retries, stale writes ignored
 * (tagged `source` = `set` | `flush`) and flush latency (a timer histogram).
 */
export const metrics = {
  dirty: Metric.gauge("keel_cursor_dirty", { description: "Cursors set in memory and not yet persisted" }),
  flushes: Metric.counter("keel_cursor_flushes_total", { description: "Flush transactions, by outcome" }),
  rowsFlushed: Metric.counter("keel_cursor_rows_flushed_total", {
    description: "Cursors written (inserted or advanced) by flushes"
  }),
  retries: Metric.counter("keel_cursor_flush_retries_total", {
    description: "Flush transactions re-run after a transient failure"
  }),
  staleWrites: Metric.counter("keel_cursor_stale_writes_total", {
    description: "Positions ignored because a newer one was already held or stored"
  }),
  flushLatency: Metric.timer("keel_cursor_flush_duration", "How long a flush took, retries included")
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/** How a store is configured. Every field is optional. */
export interface Config {
  /** Which consumer application owns the cursors; several share one database. Default `default`. */
  readonly namespace?: string | undefined
  /** How often dirty cursors are persisted (and the most a crash can lose). Default 1 second. */
  readonly flushInterval?: Duration.DurationInput | undefined
  /** What `getOrStart` returns for an unknown peer. Default `0` (Redis reads it as `0-0`). */
  readonly start?: string | undefined
}

/** The shortest and longest flush intervals accepted. */
export const flushIntervalBounds = { min: Duration.millis(1), max: Duration.hours(1) } as const

/** The defaults: namespace `default`, a flush every second, start at `0`. */
export const defaults = {
  namespace: Peer.defaultNamespace,
  flushInterval: Duration.seconds(1),
  start: Position.zero
} as const

/** A validated configuration. */
export interface Settings {
  readonly namespace: Peer.Namespace
  readonly flushInterval: Duration.Duration
  readonly start: Position.Position
}

/** Validates `config` and fills in the defaults; `InvalidConfig` names the bad field. */
export const settings = (config: Config = {}): Effect.Effect<Settings, InvalidConfig> =>
  Effect.gen(function* () {
    const namespace = yield* Either.mapLeft(
      Peer.parseNamespace(config.namespace ?? defaults.namespace),
      (error) => new InvalidConfig({ field: "namespace", value: error.value, reason: error.reason })
    )
    const start = yield* Either.mapLeft(
      Position.parse(config.start ?? defaults.start, "start"),
      (error) => new InvalidConfig({ field: "start", value: error.position, reason: error.reason })
    )
    const interval = Duration.decodeUnknown(config.flushInterval ?? defaults.flushInterval)
    if (
      Option.isNone(interval) ||
      !Duration.isFinite(interval.value) ||
      Duration.lessThan(interval.value, flushIntervalBounds.min) ||
      Duration.greaterThan(interval.value, flushIntervalBounds.max)
    ) {
      return yield* new InvalidConfig({
        field: "flushInterval",
        value: String(config.flushInterval),
        reason: "expected a duration from 1 millisecond to 1 hour"
      })
    }
    return { namespace, start, flushInterval: interval.value }
  })

/**
 * The configuration read from `Config`: `KEEL_CURSOR_NAMESPACE`, `KEEL_CURSOR_FLUSH_INTERVAL`
 * (a duration such as `500 millis`) and `KEEL_CURSOR_START`; missing ones keep their defaults.
 */
export const config: EffectConfig.Config<Config> = EffectConfig.all({
  namespace: EffectConfig.withDefault(EffectConfig.string("KEEL_CURSOR_NAMESPACE"), defaults.namespace),
  flushInterval: EffectConfig.withDefault(
    EffectConfig.duration("KEEL_CURSOR_FLUSH_INTERVAL"),
    defaults.flushInterval
  ),
  start: EffectConfig.withDefault(EffectConfig.string("KEEL_CURSOR_START"), defaults.start)
})

// ---------------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------------

/** The cursor store of one namespace. */
export interface Service {
  readonly namespace: Peer.Namespace
  /** What `getOrStart` returns for an unknown peer. */
  readonly start: Position.Position
  /**
   * The latest position of `peer`: the greater of memory and the database, or none. A stored
   * position newer than memory (written by another process) replaces memory, so a later `set` of
   * an older position is ignored as stale.
   */
  readonly get: (
    peer: string
  ) => Effect.Effect<Option.Option<Position.Position>, InvalidPeer | CursorStoreError>
  /** `get`, or the configured start (`0` by default) for a peer that has no cursor yet. */
  readonly getOrStart: (peer: string) => Effect.Effect<Position.Position, InvalidPeer | CursorStoreError>
  /** Every cursor of the namespace, stored or only in memory, ordered by peer. */
  readonly getAll: Effect.Effect<ReadonlyArray<Cursor>, CursorStoreError>
  /**
   * Records that `peer` has applied everything up to `position`, in memory, at once; the next flush
   * persists it. A position not after the one held is ignored (`unchanged` / `stale`, counted).
   * Malformed input fails typed and changes nothing; after shutdown has begun it fails `StoreClosed`.
   */
  readonly set: (
    peer: string,
    position: string
  ) => Effect.Effect<SetResult, InvalidPeer | InvalidPosition | StoreClosed>
  /**
   * Persists every dirty cursor in one transaction (retried through the `Retry` policy), with a
   * monotonic upsert. On failure every cursor stays dirty and `FlushFailed` says how many. A
   * position set while the flush runs stays dirty if it is newer than what was written. Always its
   * own transaction, never part of the caller's.
   */
  readonly flush: Effect.Effect<FlushResult, FlushFailed>
  /**
   * Removes `peer`'s cursor from the database and memory at once (a deliberate reset to the start).
   * True when there was one. Another process still holding the peer in memory would write it again.
   */
  readonly delete: (peer: string) => Effect.Effect<boolean, InvalidPeer | CursorStoreError>
  /**
   * Moves `peer` to `position` even backwards (a deliberate rewind, like Kafka's offset reset or
   * `XGROUP SETID`), written at once; memory is replaced and the peer is no longer dirty.
   */
  readonly reset: (
    peer: string,
    position: string
  ) => Effect.Effect<Position.Position, InvalidPeer | InvalidPosition | CursorStoreError>
  /**
   * Writes `peer`'s position as part of the caller's open transaction (exactly-once processing:
   * the cursor commits or rolls back with the caller's writes), monotonically. True when it
   * advanced the stored position. Memory is not touched: it cannot know whether the caller commits.
   */
  readonly setInTransaction: (
    peer: string,
    position: string
  ) => Effect.Effect<boolean, InvalidPeer | InvalidPosition | CursorStoreError, Transaction.Active>
  /** `PRAGMA wal_checkpoint(TRUNCATE)` on SQLite and local libSQL; nothing on PostgreSQL and PGlite. */
  readonly checkpoint: Effect.Effect<Checkpoint, CursorStoreError>
  /** This instance's counters. */
  readonly stats: Effect.Effect<Stats>
}

/** The cursor store service. */
export class CursorStore extends Context.Tag("@keel/cursor/CursorStore")<CursorStore, Service>() {}

// ---------------------------------------------------------------------------------------------
// Implementation
// ---------------------------------------------------------------------------------------------

/** A position held in memory, with its sort key (compared on every `set`) and whether it awaits a flush. */
interface Entry {
  readonly position: Position.Position
  readonly key: string
  readonly dirty: boolean
}

interface Counters {
  readonly flushes: number
  readonly failedFlushes: number
  readonly rowsFlushed: number
  readonly retries: number
  readonly staleSets: number
  readonly staleFlushes: number
  readonly lastFlushMillis: number | null
}

interface State {
  readonly cursors: HashMap.HashMap<Peer.Peer, Entry>
  /** How many entries are dirty. */
  readonly dirty: number
  /** Set when the final flush begins: later `set`s are refused instead of lost. */
  readonly closed: boolean
  readonly counters: Counters
}

const StoredRow = Schema.Struct({
  peer: Peer.Peer,
  position: Position.Position,
  position_key: Schema.String,
  updated_at: Schema.Number
})

/** A peer the store wrote or deleted (`RETURNING peer`): only compared with peers it holds, so not re-validated. */
const PeerRow = Schema.Struct({ peer: Schema.String })

const WalCheckpointRow = Schema.Struct({
  busy: Schema.Number,
  log: Schema.Number,
  checkpointed: Schema.Number
})

/**
 * Decodes rows the store wrote itself: a row that does not decode means the table was edited by
 * hand, a defect. The decoder is built once per schema (building one costs more than a flush of 1).
 */
const rowDecoder = <A, I>(schema: Schema.Schema<A, I>) => {
  const decode = Schema.decodeUnknown(Schema.Array(schema))
  return (rows: ReadonlyArray<unknown>): Effect.Effect<ReadonlyArray<A>> => Effect.orDie(decode(rows))
}

const decodeStored = rowDecoder(StoredRow)
const decodePeers = rowDecoder(PeerRow)
const decodeWalCheckpoint = rowDecoder(WalCheckpointRow)

const toStoreFailure = (error: unknown): StoreFailure =>
  error instanceof Transaction.CommitRejected ||
  error instanceof Transaction.TransactionAborted ||
  error instanceof Transaction.CommitOutcomeUnknown ||
  error instanceof Transaction.SessionInUse
    ? error
    : DbError.classify(error)

/** `state` with `peer` holding `entry` (or nothing), the dirty count kept right. */
const put = (state: State, peer: Peer.Peer, entry: Entry | undefined): State => {
  const held = HashMap.get(state.cursors, peer)
  const was = Option.isSome(held) && held.value.dirty ? 1 : 0
  const now = entry?.dirty === true ? 1 : 0
  return {
    ...state,
    cursors:
      entry === undefined ? HashMap.remove(state.cursors, peer) : HashMap.set(state.cursors, peer, entry),
    dirty: state.dirty + now - was
  }
}

const emptyCounters: Counters = {
  flushes: 0,
  failedFlushes: 0,
  rowsFlushed: 0,
  retries: 0,
  staleSets: 0,
  staleFlushes: 0,
  lastFlushMillis: null
}

/**
 * Builds the store: applies the migrations, then starts the background flusher in the current
 * scope. Closing the scope stops the flusher, refuses further `set`s, flushes once more and
 * checkpoints (failures are logged: a finalizer cannot fail).
 */
export const make = (
  config: Config = {}
): Effect.Effect<
  Service,
  InvalidConfig | Migrations.MigrationError,
  SqlClient.SqlClient | Backend.Backend | Scope.Scope
> =>
  Effect.gen(function* () {
    const { namespace, flushInterval, start } = yield* settings(config)
    yield* Migrations.run(cursorMigrations)
    const sql = yield* SqlClient.SqlClient
    const backend = yield* Backend.Backend
    const database = yield* Effect.context<SqlClient.SqlClient | Backend.Backend>()

    const dirtyGauge = Metric.tagged(metrics.dirty, "namespace", namespace)
    const flushes = Metric.tagged(metrics.flushes, "namespace", namespace)
    const committedFlushes = Metric.tagged(flushes, "outcome", "committed")
    const failedFlushes = Metric.tagged(flushes, "outcome", "failed")
    const rowsFlushed = Metric.tagged(metrics.rowsFlushed, "namespace", namespace)
    const retries = Metric.tagged(metrics.retries, "namespace", namespace)
    const staleWrites = Metric.tagged(metrics.staleWrites, "namespace", namespace)
    const staleSets = Metric.tagged(staleWrites, "source", "set")
    const staleFlushes = Metric.tagged(staleWrites, "source", "flush")
    const flushLatency = Metric.tagged(metrics.flushLatency, "namespace", namespace)

    const state = yield* Ref.make<State>({
      cursors: HashMap.empty(),
      dirty: 0,
      closed: false,
      counters: emptyCounters
    })
    const count = (update: (counters: Counters) => Counters) =>
      Ref.update(state, (current) => ({ ...current, counters: update(current.counters) }))
    /** Serializes flush, delete and reset, so a delete can never be undone by an in-flight flush. */
    const writer = yield* Effect.makeSemaphore(1)
    /** Applies `change` to the state atomically and moves the dirty gauge by what it changed. */
    const transition = <A>(change: (current: State) => readonly [A, State]): Effect.Effect<A> =>
      Effect.flatMap(
        Ref.modify(state, (current): readonly [readonly [A, number], State] => {
          const [result, next] = change(current)
          return [[result, next.dirty - current.dirty], next]
        }),
        ([result, delta]) =>
          delta === 0 ? Effect.succeed(result) : Effect.as(Metric.incrementBy(dirtyGauge, delta), result)
      )

    /**
     * Runs `body` as its own top-level transaction, retried under `policy`, even when the caller is
     * inside a transaction: memory moves after COMMIT, which must be a real commit, not a savepoint
     * the caller may still roll back. When the caller's transaction holds the only session of a
     * single-session backend, it fails at once with `SessionInUse` instead of waiting forever.
     */
    const ownTransaction = <A>(
      body: Effect.Effect<A, SqlError, SqlClient.SqlClient | Backend.Backend>,
      policy: Retry.Policy
    ): Effect.Effect<A, StoreFailure> =>
      Effect.flatMap(Effect.serviceOption(Transaction.Active), (active) =>
        Option.isSome(active) && active.value.backend === backend && backend.singleSession
          ? Effect.fail(new Transaction.SessionInUse({ backend: backend.kind }))
          : Retry.run(Retry.transaction(body), policy).pipe(
              Effect.mapError(toStoreFailure),
              Effect.provide(database),
              Effect.mapInputContext((context: Context.Context<never>) =>
                Context.omit(Transaction.Active, SqlClient.TransactionConnection)(context)
              )
            )
      )

    const storeError = (operation: string) => (cause: unknown) =>
      new CursorStoreError({ operation, namespace, cause: toStoreFailure(cause) })

    /** The stored rows of `peers` (all of the namespace when `peers` is undefined). */
    const readStored = (peers: ReadonlyArray<Peer.Peer> | undefined) =>
      peers === undefined
        ? Effect.flatMap(
            sql`SELECT peer, position, position_key, updated_at FROM keel_cursors
                WHERE namespace = ${namespace} ORDER BY peer`,
            decodeStored
          )
        : Batch.forEachChunk(peers, { parametersPerItem: 1, fixedParameters: 1 }, (chunk) =>
            Effect.flatMap(
              sql`SELECT peer, position, position_key, updated_at FROM keel_cursors
                  WHERE namespace = ${namespace} AND ${sql.in("peer", chunk)}`,
              decodeStored
            )
          )

    const parseInput = <A, E>(either: Either.Either<A, E>): Effect.Effect<A, E> =>
      Either.isRight(either) ? Effect.succeed(either.right) : Effect.fail(either.left)

    // --- set ------------------------------------------------------------------------------------

    const set: Service["set"] = (peerText, positionText) => {
      const peer = Peer.parse(peerText)
      if (Either.isLeft(peer)) return Effect.fail(peer.left)
      const position = Position.parse(positionText)
      if (Either.isLeft(position)) return Effect.fail(position.left)
      const entry: Entry = { position: position.right, key: Position.sortKey(position.right), dirty: true }
      const target = peer.right
      return Effect.flatMap(
        transition((current): readonly [SetResult | undefined, State] => {
          if (current.closed) return [undefined, current]
          const held = HashMap.get(current.cursors, target)
          if (Option.isSome(held) && held.value.key >= entry.key) {
            const stale = held.value.key > entry.key
            const result: SetResult = {
              peer: target,
              outcome: stale ? "stale" : "unchanged",
              position: held.value.position
            }
            if (!stale) return [result, current]
            const counters = { ...current.counters, staleSets: current.counters.staleSets + 1 }
            return [result, { ...current, counters }]
          }
          return [
            { peer: target, outcome: "advanced", position: entry.position },
            put(current, target, entry)
          ]
        }),
        (result): Effect.Effect<SetResult, StoreClosed> => {
          if (result === undefined) return Effect.fail(new StoreClosed({ namespace }))
          return result.outcome === "stale"
            ? Effect.as(Metric.increment(staleSets), result)
            : Effect.succeed(result)
        }
      )
    }

    // --- flush ----------------------------------------------------------------------------------

    interface Pending {
      readonly peer: Peer.Peer
      readonly entry: Entry
    }

    /** Upserts `pending` monotonically; returns the peers it advanced and the stored rows of the others. */
    const persist = (pending: ReadonlyArray<Pending>, now: number) =>
      Effect.gen(function* () {
        const rows = pending.map(({ peer, entry }) => ({
          namespace,
          peer,
          position: entry.position,
          position_key: entry.key,
          updated_at: now
        }))
        const advanced = yield* Batch.forEachChunk(rows, { parametersPerItem: 5 }, (chunk) =>
          Effect.flatMap(
            sql`INSERT INTO keel_cursors ${sql.insert(chunk)}
                ON CONFLICT (namespace, peer) DO UPDATE SET
                  position = excluded.position,
                  position_key = excluded.position_key,
                  updated_at = excluded.updated_at
                WHERE excluded.position_key > keel_cursors.position_key
                RETURNING peer`,
            decodePeers
          )
        )
        const advancedPeers = new Set<string>(advanced.map((row) => row.peer))
        const others = pending.filter(({ peer }) => !advancedPeers.has(peer)).map(({ peer }) => peer)
        const stored = yield* readStored(others)
        return { advancedPeers, stored }
      })

    /** Counts a retry each time the policy decides to re-run the flush transaction. */
    const countingRetries = (policy: Retry.Policy): Retry.Policy =>
      Schedule.onDecision(policy, (_, decision) =>
        ScheduleDecision.isContinue(decision)
          ? Effect.zipRight(
              Metric.increment(retries),
              count((counters) => ({ ...counters, retries: counters.retries + 1 }))
            )
          : Effect.void
      )

    const flushDirty: Effect.Effect<FlushResult, FlushFailed> = Effect.uninterruptibleMask((restore) =>
      Effect.gen(function* () {
        const snapshot = yield* Ref.get(state)
        const pending: Array<Pending> = []
        if (snapshot.dirty > 0) {
          for (const [peer, entry] of snapshot.cursors) if (entry.dirty) pending.push({ peer, entry })
        }
        if (pending.length === 0) return { flushed: 0, persisted: 0, stale: [] }
        const policy = countingRetries(yield* Retry.CurrentPolicy)
        const started = yield* Clock.currentTimeMillis
        const outcome = yield* restore(ownTransaction(persist(pending, started), policy)).pipe(Effect.either)
        const elapsed = (yield* Clock.currentTimeMillis) - started
        yield* Metric.update(flushLatency, Duration.millis(elapsed))
        if (Either.isLeft(outcome)) {
          yield* Metric.increment(failedFlushes)
          yield* count((counters) => ({
            ...counters,
            failedFlushes: counters.failedFlushes + 1,
            lastFlushMillis: elapsed
          }))
          return yield* new FlushFailed({ namespace, peers: pending.length, cause: outcome.left })
        }
        const { advancedPeers, stored } = outcome.right
        const storedByPeer = new Map(stored.map((row) => [row.peer, row]))
        const stale: Array<StaleWrite> = []
        // Memory moves only after COMMIT: a peer is clean when memory still holds what was written
        // (or something the database already has); a newer position set meanwhile stays dirty.
        yield* transition((current): readonly [undefined, State] => {
          let next = current
          for (const { peer, entry } of pending) {
            const held = HashMap.get(next.cursors, peer)
            if (Option.isNone(held)) continue
            if (advancedPeers.has(peer)) {
              if (held.value.key === entry.key) next = put(next, peer, { ...held.value, dirty: false })
              continue
            }
            const row = storedByPeer.get(peer)
            if (row === undefined) continue
            if (row.position_key > entry.key)
              stale.push({ peer, position: entry.position, stored: row.position })
            if (held.value.key <= row.position_key) {
              next = put(next, peer, { position: row.position, key: row.position_key, dirty: false })
            }
          }
          const counters: Counters = {
            ...current.counters,
            flushes: current.counters.flushes + 1,
            rowsFlushed: current.counters.rowsFlushed + advancedPeers.size,
            staleFlushes: current.counters.staleFlushes + stale.length,
            lastFlushMillis: elapsed
          }
          return [undefined, { ...next, counters }]
        })
        yield* Metric.increment(committedFlushes)
        yield* Metric.incrementBy(rowsFlushed, advancedPeers.size)
        if (stale.length > 0) yield* Metric.incrementBy(staleFlushes, stale.length)
        return { flushed: pending.length, persisted: advancedPeers.size, stale }
      })
    )

    const flush = writer.withPermits(1)(flushDirty)

    // --- reads ----------------------------------------------------------------------------------

    const get: Service["get"] = (peerText) =>
      Effect.gen(function* () {
        const peer = yield* parseInput(Peer.parse(peerText))
        const rows = yield* Retry.run(Retry.read(readStored([peer]))).pipe(
          Effect.provide(database),
          Effect.mapError(storeError("get"))
        )
        const row = rows[0]
        return yield* transition((current): readonly [Option.Option<Position.Position>, State] => {
          const held = HashMap.get(current.cursors, peer)
          if (row === undefined) return [Option.map(held, (entry) => entry.position), current]
          if (Option.isSome(held) && held.value.key > row.position_key)
            return [Option.some(held.value.position), current]
          // The database is at or past memory: adopt it; nothing older is left to flush.
          return [
            Option.some(row.position),
            put(current, peer, { position: row.position, key: row.position_key, dirty: false })
          ]
        })
      })

    const getOrStart: Service["getOrStart"] = (peer) =>
      Effect.map(
        get(peer),
        Option.getOrElse(() => start)
      )

    const getAll: Service["getAll"] = Effect.gen(function* () {
      const rows = yield* Retry.run(Retry.read(readStored(undefined))).pipe(
        Effect.provide(database),
        Effect.mapError(storeError("getAll"))
      )
      const memory = (yield* Ref.get(state)).cursors
      const cursors: Array<Cursor> = rows.map((row) => {
        const held = HashMap.get(memory, row.peer)
        const newer = Option.isSome(held) && held.value.key > row.position_key
        return {
          peer: row.peer,
          position: Option.isSome(held) && newer ? held.value.position : row.position,
          stored: row.position,
          updatedAt: row.updated_at,
          pending: Option.isSome(held) && newer && held.value.dirty
        }
      })
      const storedPeers = new Set<string>(rows.map((row) => row.peer))
      for (const [peer, entry] of memory) {
        if (!storedPeers.has(peer)) {
          cursors.push({
            peer,
            position: entry.position,
            stored: null,
            updatedAt: null,
            pending: entry.dirty
          })
        }
      }
      return cursors.sort((a, b) => (a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0))
    })

    // --- writes that bypass the debounce ----------------------------------------------------------

    const remove: Service["delete"] = (peerText) =>
      writer.withPermits(1)(
        Effect.gen(function* () {
          const peer = yield* parseInput(Peer.parse(peerText))
          const policy = yield* Retry.CurrentPolicy
          const deleted = yield* ownTransaction(
            Effect.flatMap(
              sql`DELETE FROM keel_cursors WHERE namespace = ${namespace} AND peer = ${peer} RETURNING peer`,
              decodePeers
            ),
            policy
          ).pipe(Effect.mapError(storeError("delete")))
          const inMemory = yield* transition((current): readonly [boolean, State] => [
            HashMap.has(current.cursors, peer),
            put(current, peer, undefined)
          ])
          return deleted.length > 0 || inMemory
        })
      )

    const upsertRow = (peer: Peer.Peer, entry: Entry, now: number) => ({
      namespace,
      peer,
      position: entry.position,
      position_key: entry.key,
      updated_at: now
    })

    const reset: Service["reset"] = (peerText, positionText) =>
      writer.withPermits(1)(
        Effect.gen(function* () {
          const peer = yield* parseInput(Peer.parse(peerText))
          const position = yield* parseInput(Position.parse(positionText))
          const entry: Entry = { position, key: Position.sortKey(position), dirty: false }
          const now = yield* Clock.currentTimeMillis
          const policy = yield* Retry.CurrentPolicy
          yield* ownTransaction(
            sql`INSERT INTO keel_cursors ${sql.insert(upsertRow(peer, entry, now))}
                ON CONFLICT (namespace, peer) DO UPDATE SET
                  position = excluded.position,
                  position_key = excluded.position_key,
                  updated_at = excluded.updated_at`,
            policy
          ).pipe(Effect.mapError(storeError("reset")))
          yield* transition((current): readonly [undefined, State] => [undefined, put(current, peer, entry)])
          return position
        })
      )

    const setInTransaction: Service["setInTransaction"] = (peerText, positionText) =>
      Effect.gen(function* () {
        const peer = yield* parseInput(Peer.parse(peerText))
        const position = yield* parseInput(Position.parse(positionText))
        const active = yield* Transaction.Active
        if (active.backend !== backend) {
          return yield* Effect.dieMessage(
            "CursorStore.setInTransaction: the open transaction belongs to another database than the store's"
          )
        }
        const now = yield* Clock.currentTimeMillis
        const advanced = yield* sql`INSERT INTO keel_cursors ${sql.insert(
          upsertRow(peer, { position, key: Position.sortKey(position), dirty: false }, now)
        )}
            ON CONFLICT (namespace, peer) DO UPDATE SET
              position = excluded.position,
              position_key = excluded.position_key,
              updated_at = excluded.updated_at
            WHERE excluded.position_key > keel_cursors.position_key
            RETURNING peer`.pipe(Effect.flatMap(decodePeers), Effect.mapError(storeError("setInTransaction")))
        return advanced.length > 0
      })

    const checkpoint: Service["checkpoint"] =
      backend.dialect === "pg"
        ? Effect.succeed({
            _tag: "NoCheckpoint",
            reason: "PostgreSQL checkpoints its own WAL; a committed flush is already durable"
          })
        : !backend.singleSession
          ? Effect.succeed({
              _tag: "NoCheckpoint",
              reason: "a remote libSQL server manages its own WAL"
            })
          : Retry.run(Retry.read(sql`PRAGMA wal_checkpoint(TRUNCATE)`)).pipe(
              Effect.flatMap(decodeWalCheckpoint),
              Effect.map(
                (rows): Checkpoint => ({
                  _tag: "WalCheckpoint",
                  busy: (rows[0]?.busy ?? 0) !== 0,
                  walFrames: rows[0]?.log ?? -1,
                  checkpointedFrames: rows[0]?.checkpointed ?? -1
                })
              ),
              Effect.provide(database),
              Effect.mapError(storeError("checkpoint"))
            )

    const stats: Service["stats"] = Effect.map(Ref.get(state), (current) => ({
      namespace,
      dirty: current.dirty,
      ...current.counters
    }))

    // --- lifecycle --------------------------------------------------------------------------------

    // Added before the flusher is forked, so it runs after the flusher has been interrupted.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        yield* Ref.update(state, (current) => ({ ...current, closed: true }))
        const flushed = yield* Effect.either(flush)
        if (Either.isLeft(flushed)) {
          yield* Effect.logError("cursor store: the final flush failed", flushed.left.message)
        }
        const checkpointed = yield* Effect.either(checkpoint)
        if (Either.isLeft(checkpointed)) {
          yield* Effect.logWarning("cursor store: the final checkpoint failed", checkpointed.left.message)
        }
      })
    )

    // A failed flush is logged and the next tick tries again; so is a defect (a hand-edited row
    // that no longer decodes), so that one bad row cannot stop every later flush.
    const background = Effect.catchAllCause(flush, (cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.failCause(cause)
        : Effect.logWarning("cursor store: a background flush failed; its cursors stay pending", cause)
    )
    // At a fixed rate, the first one interval after start; a slow flush delays the next, never doubles it.
    yield* Effect.forkScoped(Effect.schedule(background, Schedule.fixed(flushInterval)))

    return {
      namespace,
      start,
      get,
      getOrStart,
      getAll,
      set,
      flush,
      delete: remove,
      reset,
      setInTransaction,
      checkpoint,
      stats
    }
  })

/**
 * The store as a layer: migrations applied at start; release flushes a last time and checkpoints.
 * With tracing on (`Telemetry.enabled`), every operation is a span `keel.cursor.<operation>`.
 */
export const layer = (
  config: Config = {}
): Layer.Layer<
  CursorStore,
  InvalidConfig | Migrations.MigrationError,
  SqlClient.SqlClient | Backend.Backend
> => Layer.scoped(CursorStore, Telemetry.tracedWhenEnabled("keel.cursor", make(config)))

/** `layer` over `config` (`KEEL_CURSOR_*`). */
export const layerConfig: Layer.Layer<
  CursorStore,
  InvalidConfig | Migrations.MigrationError | ConfigError.ConfigError,
  SqlClient.SqlClient | Backend.Backend
> = Layer.unwrapEffect(Effect.map(config, layer))
