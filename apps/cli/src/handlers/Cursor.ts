/**
 * The programs of `keel cursor …` (loaded on demand): each provides only the database and the
 * cursor store of the namespace. A `set` is flushed before the command ends, and its failure is
 * the command's failure: a position keel reports as set is in the database.
 */

import type { PositionKind } from "@keel/cursor"
import * as Cursor from "@keel/cursor/Cursor"
import * as Schemas from "@keel/cursor/Schemas"
import * as Data from "effect/Data"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type {
  DeleteInput,
  ExpireInput,
  ExportInput,
  FenceInput,
  FlushInput,
  GetInput,
  ImportInput,
  LagInput,
  ListInput,
  ResetInput,
  SetInput
} from "../commands/Cursor.js"
import { InvalidInput } from "../Failure.js"
import * as Input from "../Input.js"
import * as Layers from "../Layers.js"
import * as Output from "../Output.js"
import * as Parse from "../Parse.js"

/** A peer without a cursor, for `keel cursor get` without `--or-start` (exit 1). */
export class CursorNotFound extends Data.TaggedError("CursorNotFound")<{ readonly peer: string }> {
  override get message(): string {
    return `no cursor for peer ${JSON.stringify(this.peer)}`
  }
}

/** What a command asks of the store beyond `KEEL_CURSOR_*`: a position kind, a fence. */
interface Overrides {
  readonly kind?: Option.Option<PositionKind.Kind> | undefined
  readonly fenced?: boolean | undefined
}

/** The store of `namespace` (default `KEEL_CURSOR_NAMESPACE`) with the command's overrides. */
const storeLayer = (namespace: Option.Option<string>, overrides: Overrides) => {
  const kind = overrides.kind ?? Option.none()
  if (Option.isNone(kind) && overrides.fenced !== true) return Layers.cursors(namespace)
  return Layer.provide(
    Layer.unwrapEffect(
      Effect.map(Cursor.config, (config) =>
        Cursor.layer({
          ...config,
          ...Option.match(namespace, { onNone: () => ({}), onSome: (name) => ({ namespace: name }) }),
          ...Option.match(kind, { onNone: () => ({}), onSome: (positionKind) => ({ positionKind }) }),
          ...(overrides.fenced === true ? { fenced: true } : {})
        })
      )
    ),
    Layers.database
  )
}

const withStore = <E, R>(
  namespace: Option.Option<string>,
  program: Effect.Effect<void, E, R>,
  overrides: Overrides = {}
) => Effect.provide(program, storeLayer(namespace, overrides))

/** `keel cursor get`. */
export const get = (input: GetInput) =>
  withStore(
    input.namespace,
    Effect.gen(function* () {
      const store = yield* Cursor.Cursors
      const stored = yield* store.get(input.peer)
      const position = Option.isSome(stored)
        ? stored.value
        : input.orStart
          ? store.start
          : yield* Effect.fail(new CursorNotFound({ peer: input.peer }))
      yield* Output.result(
        { namespace: store.namespace, peer: input.peer, position, found: Option.isSome(stored) },
        () => position
      )
    }),
    { kind: input.kind }
  )

/** `keel cursor set`: advance (or with `--force` rewind), then persist before exiting. */
export const set = (input: SetInput) =>
  withStore(
    input.namespace,
    Effect.gen(function* () {
      const store = yield* Cursor.Cursors
      if (input.force) {
        const position = yield* store.reset(input.peer, input.position)
        yield* Output.confirmation(
          { namespace: store.namespace, peer: input.peer, outcome: "reset", position },
          () => `${input.peer} reset to ${position}`
        )
        return
      }
      // Reading first loads the stored position, so an older one is reported as stale now rather
      // than discovered by the flush.
      yield* store.get(input.peer)
      const result = yield* store.set(input.peer, input.position)
      yield* store.flush
      yield* Output.confirmation(
        { namespace: store.namespace, peer: result.peer, outcome: result.outcome, position: result.position },
        () =>
          result.outcome === "stale"
            ? `${input.peer} is already at ${result.position}; ${input.position} ignored (use --force to rewind)`
            : `${input.peer} at ${result.position}${result.outcome === "unchanged" ? " (unchanged)" : ""}`
      )
    }),
    { kind: input.kind }
  )

/** `keel cursor list`. */
export const list = (input: ListInput) =>
  withStore(
    input.namespace,
    Effect.gen(function* () {
      const store = yield* Cursor.Cursors
      const cursors = yield* store.getAll
      yield* Output.result({ namespace: store.namespace, cursors }, () =>
        cursors.length === 0
          ? ""
          : Output.table(
              ["PEER", "POSITION", "UPDATED"],
              cursors.map((cursor) => [
                cursor.peer,
                cursor.position,
                cursor.updatedAt === null ? "-" : new Date(cursor.updatedAt).toISOString()
              ])
            )
      )
    })
  )

/** `keel cursor delete`. */
export const remove = (input: DeleteInput) =>
  withStore(
    input.namespace,
    Effect.gen(function* () {
      const store = yield* Cursor.Cursors
      const deleted = yield* store.delete(input.peer)
      yield* Output.confirmation({ namespace: store.namespace, peer: input.peer, deleted }, () =>
        deleted ? `deleted the cursor of ${input.peer}` : `${input.peer} has no cursor`
      )
    })
  )

/** `keel cursor flush`. */
export const flush = (input: FlushInput) =>
  withStore(
    input.namespace,
    Effect.gen(function* () {
      const store = yield* Cursor.Cursors
      const flushed = yield* store.flush
      const checkpoint = yield* store.checkpoint
      yield* Output.confirmation({ namespace: store.namespace, flush: flushed, checkpoint }, () =>
        checkpoint._tag === "WalCheckpoint"
          ? `flushed ${flushed.persisted} cursor(s); WAL checkpointed${checkpoint.busy ? " partly (readers busy)" : ""}`
          : `flushed ${flushed.persisted} cursor(s); ${checkpoint.reason}`
      )
    })
  )

/** A head per peer, from a JSON object `{"peer": "head"}`. */
const Heads = Schema.parseJson(Schema.Record({ key: Schema.String, value: Schema.String }))

/** `keel cursor lag`: against one head (`--head`) or a head per peer (`--heads`). */
export const lag = (input: LagInput) =>
  withStore(
    input.namespace,
    Effect.gen(function* () {
      const store = yield* Cursor.Cursors
      const heads = yield* Option.match(input.heads, {
        onNone: () => Effect.succeed(undefined),
        onSome: (file) =>
          Effect.flatMap(Input.fileOrStdin(Option.some(file), "a JSON object of heads"), (text) =>
            Either.match(Schema.decodeUnknownEither(Heads)(text), {
              onLeft: (error) =>
                Effect.fail(
                  new InvalidInput({
                    source: "--heads",
                    reason: `expected {"peer": "head", …}: ${error.message}`
                  })
                ),
              onRight: (decoded) => Effect.succeed(decoded)
            })
          )
      })
      const head = Option.getOrUndefined(input.head)
      if ((head === undefined) === (heads === undefined)) {
        return yield* new InvalidInput({ source: "--head", reason: "give exactly one of --head and --heads" })
      }
      const headOf = (peer: string) => {
        const found = head ?? heads?.[peer]
        return found === undefined
          ? Effect.fail(
              new InvalidInput({ source: "--heads", reason: `no head for peer ${JSON.stringify(peer)}` })
            )
          : Effect.succeed(found)
      }
      const lags = Option.isSome(input.peer)
        ? [yield* store.lag(input.peer.value, yield* headOf(input.peer.value))]
        : yield* store.lags(headOf)
      yield* Output.result({ namespace: store.namespace, kind: store.kind, lags }, () =>
        lags.length === 0
          ? ""
          : Output.table(
              ["PEER", "POSITION", "HEAD", "LAG", "UNIT"],
              lags.map((one) => [
                one.peer,
                Output.orDash(one.position),
                one.head,
                Output.orDash(one.distance ?? (one.behind ? "behind" : "0")),
                Output.orDash(one.unit)
              ])
            )
      )
    }),
    { kind: input.kind }
  )

/** The one target `keel cursor reset` was given, or `InvalidInput`. */
const resetTarget = (input: ResetInput): Effect.Effect<Schemas.ResetTarget, InvalidInput> => {
  const targets: Array<Effect.Effect<Schemas.ResetTarget, InvalidInput>> = []
  if (input.toEarliest) targets.push(Effect.succeed({ _tag: "Earliest" }))
  if (Option.isSome(input.toLatest))
    targets.push(Effect.succeed({ _tag: "Latest", head: input.toLatest.value }))
  if (Option.isSome(input.to)) targets.push(Effect.succeed({ _tag: "Position", position: input.to.value }))
  if (Option.isSome(input.toDatetime)) {
    const text = input.toDatetime.value
    targets.push(
      Option.match(DateTime.make(text), {
        onNone: () =>
          Effect.fail(
            new InvalidInput({
              source: "--to-datetime",
              reason: `${JSON.stringify(text)} is not a date-time`
            })
          ),
        onSome: (at) => Effect.succeed({ _tag: "Time", at: DateTime.toEpochMillis(at) })
      })
    )
  }
  if (Option.isSome(input.shiftBy)) {
    const text = input.shiftBy.value
    targets.push(
      /^-?(0|[1-9][0-9]{0,19})$/.test(text)
        ? Effect.succeed({ _tag: "Shift", by: BigInt(text) })
        : Effect.fail(
            new InvalidInput({ source: "--shift-by", reason: `${JSON.stringify(text)} is not an integer` })
          )
    )
  }
  const [only, ...rest] = targets
  if (only === undefined || rest.length > 0) {
    return Effect.fail(
      new InvalidInput({
        source: "keel cursor reset",
        reason: "give exactly one of --to-earliest, --to-latest, --to, --to-datetime, --shift-by"
      })
    )
  }
  return only
}

/** `keel cursor reset`: Kafka-style, in one transaction, or a dry run. */
export const reset = (input: ResetInput) =>
  Effect.flatMap(resetTarget(input), (target) =>
    withStore(
      input.namespace,
      Effect.gen(function* () {
        const store = yield* Cursor.Cursors
        const result = yield* store.resetTo(target, {
          peers: input.peers.length === 0 ? undefined : input.peers,
          dryRun: input.dryRun
        })
        yield* Output.result({ namespace: store.namespace, ...result }, () =>
          result.changes.length === 0
            ? "no cursor to reset"
            : `${Output.table(
                ["PEER", "FROM", "TO"],
                result.changes.map((change) => [change.peer, Output.orDash(change.from), change.to])
              )}${result.dryRun ? "\n(dry run: nothing written)" : ""}`
        )
      }),
      { kind: input.kind }
    )
  )

/** `keel cursor expire`. */
export const expire = (input: ExpireInput) =>
  Effect.flatMap(Parse.duration("idle-for", input.idleFor), (idleFor) =>
    withStore(
      input.namespace,
      Effect.gen(function* () {
        const store = yield* Cursor.Cursors
        const result = yield* store.expire(idleFor, { dryRun: input.dryRun })
        yield* Output.result({ namespace: store.namespace, ...result }, () =>
          result.expired.length === 0
            ? "no idle cursor"
            : `${result.dryRun ? "would expire" : "expired"}: ${result.expired.join(", ")}`
        )
      })
    )
  )

/** `keel cursor export`: one JSON document on stdout, whatever the output mode. */
export const exportCursors = (input: ExportInput) =>
  withStore(
    input.namespace,
    Effect.gen(function* () {
      const store = yield* Cursor.Cursors
      const exported = yield* store.export
      yield* Output.result(exported, () => Output.json(exported))
    })
  )

const decodeExport = Schema.decodeUnknownEither(Schema.parseJson(Schemas.Export))

/** `keel cursor import`: the document `export` printed, checked whole before anything is written. */
export const importCursors = (input: ImportInput) =>
  Effect.gen(function* () {
    const source = Option.getOrElse(
      Option.filter(input.file, (file) => file !== "-"),
      () => "stdin"
    )
    const text = yield* Input.fileOrStdin(input.file, "an exported cursor document")
    const document = yield* Either.mapLeft(
      decodeExport(text),
      (error) => new InvalidInput({ source, reason: `not a cursor export: ${error.message}` })
    )
    // The export's kind declares a new namespace; an existing one must match it.
    const kind = Option.orElse(input.kind, () => Option.some(document.kind))
    yield* withStore(
      input.namespace,
      Effect.gen(function* () {
        const store = yield* Cursor.Cursors
        const result = yield* store.import(document.cursors, { mode: input.mode, dryRun: input.dryRun })
        yield* Output.confirmation(
          { namespace: store.namespace, ...result },
          () =>
            `${result.dryRun ? "would import" : "imported"} ${result.written} cursor(s)${
              result.skipped.length > 0 ? `; skipped (not behind): ${result.skipped.join(", ")}` : ""
            }`
        )
      }),
      { kind }
    )
  })

/** `keel cursor fence`: takes the next fence epoch (every older fenced writer is refused from now on). */
export const fence = (input: FenceInput) =>
  withStore(
    input.namespace,
    Effect.gen(function* () {
      const store = yield* Cursor.Cursors
      yield* Output.confirmation(
        { namespace: store.namespace, fence: store.fence },
        () => `namespace ${store.namespace} fenced at epoch ${store.fence}`
      )
    }),
    { fenced: true }
  )
