/**
 * The cursor store: the last applied stream position per peer, durable across restarts, that
 * never moves backwards.
 *
 * `set` only touches memory (and marks the peer dirty); a background fiber persists every dirty
 * cursor each `flushInterval` in one transaction, and the store's release flushes a last time and
 * checkpoints. The write is a monotonic upsert — it replaces a stored position only with a later
 * one, in the order the namespace's position kind declares (`PositionKind.ts`) — so it is
 * idempotent: the flush is retried through `@keel/sql`'s policy, and a stale write from an old
 * process is ignored and counted. A flush that still fails keeps its peers dirty. After a crash a
 * consumer therefore re-reads at most what it applied in the last flush interval (plus the time
 * one flush takes) and never skips any of the stream.
 *
 * A store configured `fenced` acquires the namespace's next fence epoch when it starts: from then
 * on every write of an older holder (a zombie) is refused with `Fenced` and moves nothing.
 *
 * The service is this module (tag, interface, layers); the statements are in `SqlCursorStore`,
 * behind the `CursorStore` seam; the semantics are plain functions in `internal/`.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { Transaction } from "@keel/sql"
import * as Backend from "@keel/sql/Backend"
import * as Migrations from "@keel/sql/Migrations"
import * as Retry from "@keel/sql/Retry"
import * as Telemetry from "@keel/sql/Telemetry"
import type { ConfigError, Scope } from "effect"
import * as Cause from "effect/Cause"
import * as EffectConfig from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import {
  type CursorStoreError,
  type FlushFailed,
  InvalidConfig,
  type InvalidPeer,
  type InvalidPosition,
  type StoreClosed
} from "./CursorError.js"
import * as CursorStore from "./CursorStore.js"
import * as Admin from "./internal/admin.js"
import type { Env } from "./internal/env.js"
import * as Reads from "./internal/reads.js"
import * as State from "./internal/state.js"
import * as Writes from "./internal/writes.js"
import * as Metrics from "./Metrics.js"
import { migrations as cursorMigrations } from "./migrations/index.js"
import * as Peer from "./Peer.js"
import type * as Position from "./Position.js"
import * as PositionKind from "./PositionKind.js"
import type * as Schemas from "./Schemas.js"
import * as SqlCursorStore from "./SqlCursorStore.js"

export {
  Checkpoint,
  Cursor,
  type Export,
  ExportedCursor,
  FlushResult,
  type ImportMode,
  type Lag,
  type ResetTarget,
  SetOutcome,
  SetResult,
  StaleWrite,
  Stats
} from "./Schemas.js"

/** The store's metrics (see `Metrics.ts`). */
export const metrics = Metrics.metrics

/** The store's migrations (`keel_cursor_migrations`), for `keel db migrate`. `layer` applies them at start. */
export const migrations: Migrations.MigrationSet = cursorMigrations

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/** How a store is configured. Every field is optional. */
export interface Config {
  /** Which consumer application owns the cursors; several share one database. Default `default`. */
  readonly namespace?: string | undefined
  /** How often dirty cursors are persisted (and the most a crash can lose). Default 1 second. */
  readonly flushInterval?: Duration.DurationInput | undefined
  /** What `getOrStart` returns for an unknown peer. Default: the kind's zero (`0` for `stream`). */
  readonly start?: string | undefined
  /**
   * The namespace's position kind; the first store declares it, later ones must match. Unset: the
   * kind the namespace was declared with (`stream` for a new one).
   */
  readonly positionKind?: PositionKind.Kind | undefined
  /** Acquire the namespace's next fence at start: older fenced writers are refused from then on. */
  readonly fenced?: boolean | undefined
  /** Delete cursors that have not advanced for this long, checked in the background. Default: never. */
  readonly idleExpiry?: Duration.DurationInput | undefined
}

/** The shortest and longest flush intervals accepted. */
export const flushIntervalBounds = { min: Duration.millis(1), max: Duration.hours(1) } as const

/** The defaults: namespace `default`, a flush every second, start at `0`, `stream` positions. */
export const defaults = {
  namespace: Peer.defaultNamespace,
  flushInterval: Duration.seconds(1),
  start: PositionKind.ordering("stream").zero,
  positionKind: "stream"
} as const

/** A validated configuration. */
export interface Settings {
  readonly namespace: Peer.Namespace
  readonly flushInterval: Duration.Duration
  /** The start, checked against `positionKind` (against `stream` when the kind is left to the namespace). */
  readonly start: Position.Any
  /** The kind asked for, or undefined: the namespace's own. */
  readonly positionKind: PositionKind.Kind | undefined
  readonly fenced: boolean
  readonly idleExpiry: Duration.Duration | undefined
}

const badDuration = (field: string, value: unknown, reason: string) =>
  new InvalidConfig({ field, value: String(value), reason })

/** Validates `config` and fills in the defaults; `InvalidConfig` names the bad field. */
export const settings = (config: Config = {}): Effect.Effect<Settings, InvalidConfig> =>
  Effect.gen(function* () {
    const namespace = yield* Either.mapLeft(
      Peer.parseNamespace(config.namespace ?? defaults.namespace),
      (error) => new InvalidConfig({ field: "namespace", value: error.value, reason: error.reason })
    )
    const positionKind = config.positionKind
    if (positionKind !== undefined && !PositionKind.kinds.includes(positionKind)) {
      return yield* new InvalidConfig({
        field: "positionKind",
        value: String(positionKind),
        reason: `expected one of ${PositionKind.kinds.join(", ")}`
      })
    }
    const rules = PositionKind.ordering(positionKind ?? defaults.positionKind)
    const start = yield* Either.mapLeft(
      rules.parse(config.start ?? rules.zero, "start"),
      (error) => new InvalidConfig({ field: "start", value: error.position, reason: error.reason })
    )
    const interval = Duration.decodeUnknown(config.flushInterval ?? defaults.flushInterval)
    if (
      Option.isNone(interval) ||
      !Duration.isFinite(interval.value) ||
      Duration.lessThan(interval.value, flushIntervalBounds.min) ||
      Duration.greaterThan(interval.value, flushIntervalBounds.max)
    ) {
      return yield* badDuration(
        "flushInterval",
        config.flushInterval,
        "expected a duration from 1 millisecond to 1 hour"
      )
    }
    let idleExpiry: Duration.Duration | undefined
    if (config.idleExpiry !== undefined) {
      const idle = Duration.decodeUnknown(config.idleExpiry)
      if (
        Option.isNone(idle) ||
        !Duration.isFinite(idle.value) ||
        Duration.lessThan(idle.value, Duration.seconds(1))
      ) {
        return yield* badDuration(
          "idleExpiry",
          config.idleExpiry,
          "expected a finite duration of at least 1 second"
        )
      }
      idleExpiry = idle.value
    }
    return {
      namespace,
      start,
      flushInterval: interval.value,
      positionKind,
      fenced: config.fenced === true,
      idleExpiry
    }
  })

/**
 * The configuration read from `Config`: `KEEL_CURSOR_NAMESPACE`, `KEEL_CURSOR_FLUSH_INTERVAL`
 * (a duration such as `500 millis`), `KEEL_CURSOR_START`, `KEEL_CURSOR_POSITION_KIND`,
 * `KEEL_CURSOR_FENCED` and `KEEL_CURSOR_IDLE_EXPIRY`; missing ones keep their defaults.
 */
export const config: EffectConfig.Config<Config> = EffectConfig.all({
  namespace: EffectConfig.withDefault(EffectConfig.string("KEEL_CURSOR_NAMESPACE"), defaults.namespace),
  flushInterval: EffectConfig.withDefault(
    EffectConfig.duration("KEEL_CURSOR_FLUSH_INTERVAL"),
    defaults.flushInterval
  ),
  start: EffectConfig.option(EffectConfig.string("KEEL_CURSOR_START")).pipe(
    EffectConfig.map(Option.getOrUndefined)
  ),
  positionKind: EffectConfig.option(
    EffectConfig.literal(...PositionKind.kinds)("KEEL_CURSOR_POSITION_KIND")
  ).pipe(EffectConfig.map(Option.getOrUndefined)),
  fenced: EffectConfig.withDefault(EffectConfig.boolean("KEEL_CURSOR_FENCED"), false),
  idleExpiry: EffectConfig.option(EffectConfig.duration("KEEL_CURSOR_IDLE_EXPIRY")).pipe(
    EffectConfig.map(Option.getOrUndefined)
  )
})

// ---------------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------------

/** The cursor store of one namespace. */
export interface Service {
  readonly namespace: Peer.Namespace
  /** The namespace's position kind: how positions are parsed and ordered. */
  readonly kind: PositionKind.Kind
  /** What `getOrStart` returns for an unknown peer. */
  readonly start: Position.Any
  /** The fence epoch this store holds (a `fenced` store), or null. */
  readonly fence: number | null
  /**
   * The latest position of `peer`: the later of memory and the database, or none. A stored
   * position at or past memory (written by another process) replaces memory, so a later `set` of
   * an older position is ignored as stale.
   */
  readonly get: (peer: string) => Effect.Effect<Option.Option<Position.Any>, InvalidPeer | CursorStoreError>
  /** `get`, or the configured start (`0` by default) for a peer that has no cursor yet. */
  readonly getOrStart: (peer: string) => Effect.Effect<Position.Any, InvalidPeer | CursorStoreError>
  /** Every cursor of the namespace, stored or only in memory, ordered by peer. */
  readonly getAll: Effect.Effect<ReadonlyArray<Schemas.Cursor>, CursorStoreError>
  /**
   * Records that `peer` has applied everything up to `position`, in memory, at once; the next flush
   * persists it. A position not after the one held is ignored (`unchanged` / `stale`, counted).
   * Malformed input fails typed and changes nothing; after shutdown has begun it fails `StoreClosed`.
   */
  readonly set: (
    peer: string,
    position: string
  ) => Effect.Effect<Schemas.SetResult, InvalidPeer | InvalidPosition | StoreClosed>
  /**
   * Persists every dirty cursor in one transaction (retried through the `Retry` policy), with a
   * monotonic upsert. On failure every cursor stays dirty and `FlushFailed` says how many (its
   * cause is `Fenced` for a replaced fenced writer). A position set while the flush runs stays
   * dirty if it is newer than what was written. Always its own transaction, never the caller's.
   */
  readonly flush: Effect.Effect<Schemas.FlushResult, FlushFailed>
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
  ) => Effect.Effect<Position.Any, InvalidPeer | InvalidPosition | CursorStoreError>
  /**
   * Writes `peer`'s position as part of the caller's open transaction (exactly-once processing:
   * the cursor commits or rolls back with the caller's writes), monotonically. True when it
   * advanced the stored position. Memory is not touched: it cannot know whether the caller commits.
   */
  readonly setInTransaction: (
    peer: string,
    position: string
  ) => Effect.Effect<boolean, InvalidPeer | InvalidPosition | CursorStoreError, Transaction.Active>
  /** How far `peer` is behind `head` (a position of the namespace's kind). */
  readonly lag: (
    peer: string,
    head: string
  ) => Effect.Effect<Schemas.Lag, InvalidPeer | InvalidPosition | CursorStoreError>
  /** The lag of every cursor against one head, or a head per peer that the caller computes. */
  readonly lags: <E = never, R = never>(
    head: Reads.Head<E, R>
  ) => Effect.Effect<ReadonlyArray<Schemas.Lag>, InvalidPosition | CursorStoreError | E, R>
  /**
   * Moves many cursors (`peers`, or every stored one) to `target` in one transaction, even
   * backwards, like `kafka-consumer-groups --reset-offsets`; `dryRun` only reports the changes.
   * An impossible target (a time for LSNs, a shift of stream ids) fails typed; nothing is written.
   */
  readonly resetTo: <E = never, R = never>(
    target: Schemas.ResetTarget,
    options?: {
      readonly peers?: ReadonlyArray<string> | undefined
      readonly dryRun?: boolean | undefined
      /** For `Latest`: the head of each peer's stream, computed by the caller. */
      readonly head?: ((peer: Peer.Peer) => Effect.Effect<string, E, R>) | undefined
    }
  ) => Effect.Effect<Schemas.ResetResult, InvalidPeer | InvalidPosition | CursorStoreError | E, R>
  /** Every cursor of the namespace (latest known positions), in the form `import` reads. */
  readonly export: Effect.Effect<Schemas.Export, CursorStoreError>
  /**
   * Imports cursors in one transaction: `advance` (default) moves only forward, `overwrite` sets
   * them as given. Every line is checked first: one bad line fails typed and nothing is written.
   */
  readonly import: (
    cursors: ReadonlyArray<Schemas.ExportedCursor>,
    options?: { readonly mode?: Schemas.ImportMode | undefined; readonly dryRun?: boolean | undefined }
  ) => Effect.Effect<Schemas.ImportResult, InvalidPeer | InvalidPosition | CursorStoreError>
  /** Deletes the cursors that have not advanced for `idleFor` (not those dirty in memory); `dryRun` lists them. */
  readonly expire: (
    idleFor: Duration.DurationInput,
    options?: { readonly dryRun?: boolean | undefined }
  ) => Effect.Effect<Schemas.ExpireResult, CursorStoreError>
  /** `PRAGMA wal_checkpoint(TRUNCATE)` on SQLite and local libSQL; nothing on PostgreSQL and PGlite. */
  readonly checkpoint: Effect.Effect<Schemas.Checkpoint, CursorStoreError>
  /** This instance's counters. */
  readonly stats: Effect.Effect<Schemas.Stats>
}

/** The cursor store service. */
export class Cursors extends Context.Tag("@keel/cursor/Cursors")<Cursors, Service>() {}

/**
 * Builds the store over a `CursorStore`: reads the namespace's position kind (a mismatch is
 * `InvalidConfig`; an undeclared namespace is declared by the store's first write), acquires a
 * fence when configured (which declares it at once), then starts the background flusher in the
 * current scope. Closing the scope stops it, refuses further `set`s, flushes once more and
 * checkpoints (failures are logged: a finalizer cannot fail).
 */
export const makeWith = (
  config: Config = {}
): Effect.Effect<
  Service,
  InvalidConfig | CursorStoreError,
  CursorStore.CursorStore | Backend.Backend | Scope.Scope
> =>
  Effect.gen(function* () {
    const settled = yield* settings(config)
    const { namespace, flushInterval } = settled
    const storage = yield* CursorStore.CursorStore
    const backend = yield* Backend.Backend
    const wanted = settled.positionKind ?? defaults.positionKind
    // A fenced store declares the namespace as it takes the fence; any other writes nothing until
    // its first write, which declares the namespace (a store that only reads leaves no trace).
    const found = settled.fenced
      ? Option.some(yield* storage.acquireFence(namespace, wanted, yield* Retry.CurrentPolicy))
      : yield* storage.declaration(namespace)
    const kind = Option.match(found, { onNone: () => wanted, onSome: (declared) => declared.kind })
    if (settled.positionKind !== undefined && kind !== settled.positionKind) {
      return yield* new InvalidConfig({
        field: "positionKind",
        value: settled.positionKind,
        reason: `namespace ${JSON.stringify(namespace)} holds positions of kind ${kind}`
      })
    }
    const rules = PositionKind.ordering(kind)
    // A start checked against `stream` while the kind was the namespace's to say: check it again.
    const start =
      settled.positionKind !== undefined
        ? settled.start
        : yield* Either.mapLeft(
            rules.parse(config.start ?? rules.zero, "start"),
            (error) => new InvalidConfig({ field: "start", value: error.position, reason: error.reason })
          )
    const fence = settled.fenced
      ? Option.getOrUndefined(Option.map(found, (declared) => declared.epoch))
      : undefined
    const tagged = Metrics.forNamespace(namespace)
    const env: Env = {
      namespace,
      rules,
      start,
      storage,
      backend,
      memory: yield* State.make(tagged.dirty),
      undeclared: yield* Ref.make(Option.isNone(found) ? Option.some(kind) : Option.none()),
      writer: yield* Effect.makeSemaphore(1),
      fence,
      metrics: tagged
    }
    const flush = Writes.flush(env)
    const get = Reads.get(env)
    const checkpoint: Service["checkpoint"] = storage.checkpoint(namespace)

    // Added before the flusher is forked, so it runs after the flusher has been interrupted.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        yield* env.memory.transition((memory) => memory.close())
        const flushed = yield* Effect.either(flush)
        if (Either.isLeft(flushed))
          yield* Effect.logError("cursor store: the final flush failed", flushed.left.message)
        const checkpointed = yield* Effect.either(checkpoint)
        if (Either.isLeft(checkpointed)) {
          yield* Effect.logWarning("cursor store: the final checkpoint failed", checkpointed.left.message)
        }
      })
    )

    // A failed flush is logged and the next tick tries again; so is a defect, so that one bad row
    // cannot stop every later flush.
    const background = <A, E>(work: Effect.Effect<A, E>, what: string) =>
      Effect.catchAllCause(work, (cause) =>
        Cause.isInterruptedOnly(cause)
          ? Effect.failCause(cause)
          : Effect.logWarning(`cursor store: ${what}`, cause)
      )
    // At a fixed rate, the first one interval after start; a slow flush delays the next, never doubles it.
    yield* Effect.forkScoped(
      Effect.schedule(
        background(flush, "a background flush failed; its cursors stay pending"),
        Schedule.fixed(flushInterval)
      )
    )
    const expire = Admin.expire(env)
    const idleExpiry = settled.idleExpiry
    if (idleExpiry !== undefined) {
      const every = Duration.clamp(Duration.divide(idleExpiry, 4).pipe(Option.getOrElse(() => idleExpiry)), {
        minimum: Duration.seconds(1),
        maximum: Duration.hours(1)
      })
      // At start, then every quarter of the idle time (from 1 second to 1 hour).
      yield* Effect.forkScoped(
        Effect.repeat(background(expire(idleExpiry), "the idle expiry failed"), Schedule.spaced(every))
      )
    }

    return {
      namespace,
      kind,
      start,
      fence: fence ?? null,
      get,
      getOrStart: (peer) =>
        Effect.map(
          get(peer),
          Option.getOrElse(() => start)
        ),
      getAll: Reads.getAll(env),
      set: Writes.set(env),
      flush,
      delete: Admin.remove(env),
      reset: Admin.reset(env),
      setInTransaction: Admin.setInTransaction(env),
      lag: Reads.lag(env),
      lags: Reads.lags(env),
      resetTo: Admin.resetMany(env),
      export: Admin.exportAll(env),
      import: Admin.importAll(env),
      expire,
      checkpoint,
      stats: Effect.map(env.memory.current, (current) => ({
        namespace,
        dirty: current.pending.size,
        ...current.counters
      }))
    }
  })

/** `makeWith` over the SQL storage; applies the migrations first. */
export const make = (
  config: Config = {}
): Effect.Effect<
  Service,
  InvalidConfig | CursorStoreError | Migrations.MigrationError,
  SqlClient.SqlClient | Backend.Backend | Scope.Scope
> =>
  Effect.gen(function* () {
    yield* Migrations.run(cursorMigrations)
    const storage = yield* SqlCursorStore.make
    return yield* Effect.provideService(makeWith(config), CursorStore.CursorStore, storage)
  })

/**
 * The store as a layer: migrations applied at start; release flushes a last time and checkpoints.
 * With tracing on (`Telemetry.enabled`), every operation is a span `keel.cursor.<operation>`.
 */
export const layer = (
  config: Config = {}
): Layer.Layer<
  Cursors,
  InvalidConfig | CursorStoreError | Migrations.MigrationError,
  SqlClient.SqlClient | Backend.Backend
> => Layer.scoped(Cursors, Telemetry.tracedWhenEnabled("keel.cursor", make(config)))

/** `layer` over `config` (`KEEL_CURSOR_*`). */
export const layerConfig: Layer.Layer<
  Cursors,
  InvalidConfig | CursorStoreError | Migrations.MigrationError | ConfigError.ConfigError,
  SqlClient.SqlClient | Backend.Backend
> = Layer.unwrapEffect(Effect.map(config, layer))
