/**
 * The queue operations a consumer runs on: a subset of the service and a few store operations,
 * passed to `Consumer.make` so that the consumer depends on nothing else.
 */
import type { Duration, Effect, Scope, Stream } from "effect"
import type {
  InvalidOption,
  InvalidQueueName,
  LeaseLost,
  QueueNotFound,
  QueueStoreError,
  WorkerIdInUse
} from "../QueueError.js"
import type * as QueueStore from "../QueueStore.js"
import type { Lease, MaintenanceReport, QueueInfo, QueueName, ReleaseOutcome } from "../Schemas.js"
import type { Taken } from "./lease.js"

/** The queue operations a consumer uses (a subset of the service, and one store operation). */
export interface Operations {
  readonly queueName: (name: string) => Effect.Effect<QueueName, InvalidQueueName>
  readonly getQueue: (
    name: string
  ) => Effect.Effect<QueueInfo, InvalidQueueName | QueueNotFound | QueueStoreError>
  readonly take: (
    queue: string,
    options: { readonly qty: number; readonly visibilityTimeout: number; readonly workerId: string }
  ) => Effect.Effect<Taken, InvalidQueueName | QueueNotFound | InvalidOption | QueueStoreError>
  readonly archive: (queue: string, lease: Lease) => Effect.Effect<void, AckFailure>
  readonly delete: (queue: string, lease: Lease) => Effect.Effect<void, AckFailure>
  readonly release: (
    queue: string,
    lease: Lease,
    options: { readonly delay: number; readonly error?: string }
  ) => Effect.Effect<ReleaseOutcome, AckFailure>
  /** Settles each held lease on its own (not all-or-nothing); the lost ones. */
  readonly settleEach: (
    queue: QueueName,
    leases: ReadonlyArray<Lease>,
    settlement: QueueStore.Settlement
  ) => Effect.Effect<QueueStore.Settled | undefined, QueueStoreError>
  readonly registerWorker: (options: {
    readonly queue: string
    readonly workerId?: string | undefined
    readonly heartbeatInterval?: Duration.DurationInput | undefined
    readonly workerTimeout?: Duration.DurationInput | undefined
  }) => Effect.Effect<
    { readonly id: string },
    InvalidQueueName | QueueNotFound | InvalidOption | WorkerIdInUse | QueueStoreError,
    Scope.Scope
  >
  readonly maintain: Effect.Effect<MaintenanceReport, QueueStoreError>
  /** Signals of the queue: messages to read, or a leased message cancelled. */
  readonly wakeups: (queue: QueueName) => Stream.Stream<QueueStore.Wakeup, QueueNotFound | QueueStoreError>
  /** Of these leases, the ids no longer held (read only). */
  readonly lostLeases: (
    queue: QueueName,
    leases: ReadonlyArray<Lease>
  ) => Effect.Effect<ReadonlyArray<number>, QueueNotFound | QueueStoreError>
  /** Run each handler in a span `keel.queue.handle` continuing the message's trace context. */
  readonly tracing: boolean
}

/** How an acknowledgement can fail. */
export type AckFailure = InvalidQueueName | QueueNotFound | InvalidOption | LeaseLost | QueueStoreError
