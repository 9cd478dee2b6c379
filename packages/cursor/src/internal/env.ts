/**
 * What every cursor operation works with: the namespace and its ordering, the storage, the memory,
 * the writer permit, the fence this store holds and its metrics. Built once per store in `Cursor.make`.
 */
import type { Backend, Retry } from "@keel/sql"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import { CursorStoreError, FlushFailed, type InvalidPeer, type InvalidPosition } from "../CursorError.js"
import type * as CursorStore from "../CursorStore.js"
import type * as Metrics from "../Metrics.js"
import * as Peer from "../Peer.js"
import type * as Position from "../Position.js"
import type * as PositionKind from "../PositionKind.js"
import type * as State from "./state.js"

/** One store's working set. */
export interface Env {
  readonly namespace: Peer.Namespace
  readonly rules: PositionKind.Ordering
  readonly start: Position.Any
  readonly storage: CursorStore.Storage
  readonly backend: Backend.Backend
  readonly memory: State.Memory
  /** Serializes flush, delete, reset, import and expiry, so a delete can never be undone by an in-flight flush. */
  readonly writer: Effect.Semaphore
  /** The fence this store holds, when it is a fenced writer. */
  readonly fence: number | undefined
  /** The kind its next write declares the namespace with; none once the namespace is known declared. */
  readonly undeclared: Ref.Ref<Option.Option<PositionKind.Kind>>
  readonly metrics: Metrics.NamespaceMetrics
}

/** How a write of this store is guarded: its fence, `policy`, and the declaration still owed. */
export const guardOf = (env: Env, policy: Retry.Policy): Effect.Effect<CursorStore.Guard> =>
  Effect.map(Ref.get(env.undeclared), (undeclared) => ({
    fence: env.fence,
    policy,
    declare: Option.getOrUndefined(undeclared)
  }))

/** Runs a write that declares the namespace when it still owes it; once it commits, none is owed. */
export const declaring = <A, E, R>(env: Env, write: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.tap(write, () => Ref.set(env.undeclared, Option.none()))

/** `either` as an effect. */
export const fromEither = <A, E>(either: Either.Either<A, E>): Effect.Effect<A, E> =>
  Either.isRight(either) ? Effect.succeed(either.right) : Effect.fail(either.left)

/** `text` as a peer name. */
export const peerOf = (text: string): Effect.Effect<Peer.Peer, InvalidPeer> => fromEither(Peer.parse(text))

/** `text` as a position of the namespace's kind, with its sort key. */
export const keyedOf = (
  env: Env,
  text: string,
  field?: string
): Effect.Effect<PositionKind.Keyed, InvalidPosition> =>
  Effect.map(fromEither(env.rules.parse(text, field)), (position) => ({
    position,
    key: env.rules.key(position)
  }))

/** A storage failure of a flush, as the flush reports it. */
export const flushFailed = (env: Env, peers: number) => (error: CursorStoreError) =>
  new FlushFailed({ namespace: env.namespace, peers, cause: error.cause })

/** Re-labels a storage failure with the service operation that hit it. */
export const asOperation =
  (operation: string) =>
  (error: CursorStoreError): CursorStoreError =>
    error.operation === operation
      ? error
      : new CursorStoreError({ operation, namespace: error.namespace, cause: error.cause })
