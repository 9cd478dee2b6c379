/**
 * Acknowledgements — delete, archive, extend, release — of leases the caller holds. Each is one
 * store operation that checks the leases under the write lock and acts on them: all or none
 * (`LeaseLost` naming the lost ones, nothing changed), one atomic step.
 */
import * as Batch from "@keel/sql/Batch"
import * as Clock from "effect/Clock"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"
import * as Metrics from "../Metrics.js"
import { ExtendOptions, LeaseInput, ReleaseOptions } from "../Options.js"
import {
  type InvalidOption,
  type InvalidQueueName,
  LeaseLost,
  QueueNotFound,
  type QueueStoreError
} from "../QueueError.js"
import type * as QueueStore from "../QueueStore.js"
import {
  type Lease,
  maxBatchSize,
  maxErrorLength,
  parseQueueName,
  type QueueName,
  type ReleaseOutcome
} from "../Schemas.js"
import { decoder } from "./optionSchema.js"

/** Errors of lease-checked acknowledgements. */
export type AckError = InvalidQueueName | QueueNotFound | InvalidOption | LeaseLost | QueueStoreError

const truncate = (text: string): string =>
  text.length > maxErrorLength ? `${text.slice(0, maxErrorLength - 1)}…` : text

const decodeLease = decoder(LeaseInput)
const decodeExtendOptions = decoder(ExtendOptions)
const decodeReleaseOptions = decoder(ReleaseOptions)

/** Checks leases as given (`lease` for a single one, `leases[i]` in a batch). */
const validateLeases = (
  leases: ReadonlyArray<Lease>,
  single: boolean
): Effect.Effect<ReadonlyArray<typeof LeaseInput.Type>, InvalidOption> =>
  Effect.forEach(leases, (lease, index) => decodeLease(lease, single ? "lease." : `leases[${index}].`))

/** The single-message form of a batch operation: a batch of one is never too large. */
const single = <A, E, R>(
  effect: Effect.Effect<A, E | Batch.BatchTooLarge, R>
): Effect.Effect<A, Exclude<E, Batch.BatchTooLarge>, R> =>
  Effect.catchIf(
    effect,
    (error): error is Batch.BatchTooLarge => Predicate.isTagged(error, "BatchTooLarge"),
    (error) => Effect.die(error)
  ) as Effect.Effect<A, Exclude<E, Batch.BatchTooLarge>, R>

/** Acknowledging over `store`. */
export const make = (store: QueueStore.Store) => {
  /** Settles `leases` all-or-nothing; `LeaseLost` naming the lost ones (nothing changed). */
  const settle = (
    queue: string,
    leases: ReadonlyArray<Lease>,
    isSingle: boolean,
    settlement: QueueStore.Settlement
  ): Effect.Effect<
    { readonly queue: QueueName; readonly settled: QueueStore.Settled | undefined },
    AckError | Batch.BatchTooLarge
  > =>
    Effect.gen(function* () {
      const valid = yield* parseQueueName(queue)
      if (leases.length === 0) return { queue: valid, settled: undefined }
      yield* Batch.validate(leases, maxBatchSize)
      const checked = yield* validateLeases(leases, isSingle)
      const now = yield* Clock.currentTimeMillis
      const settled = yield* store.settle(valid, {
        leases: checked.map((lease) => ({ id: lease.id, lease: lease.lease })),
        settlement,
        atomic: true,
        now
      })
      if (settled === undefined) return yield* new QueueNotFound({ queue: valid })
      if (settled.lost.length > 0) return yield* new LeaseLost({ queue: valid, messageIds: settled.lost })
      return { queue: valid, settled }
    })

  const acknowledge =
    (action: "delete" | "archive") => (queue: string, leases: ReadonlyArray<Lease>, isSingle: boolean) =>
      Effect.flatMap(
        settle(queue, leases, isSingle, action === "delete" ? { _tag: "Delete" } : { _tag: "Archive" }),
        ({ queue: valid }) => Metrics.count(Metrics.acknowledged, valid, leases.length, { action })
      )

  const deleteLeases = acknowledge("delete")
  const archiveLeases = acknowledge("archive")

  const extendLeases = (
    queue: string,
    leases: ReadonlyArray<Lease>,
    options: ExtendOptions,
    isSingle: boolean
  ) =>
    Effect.gen(function* () {
      const visibilityMs = (yield* decodeExtendOptions(options)).visibilityTimeout
      const { settled } = yield* settle(queue, leases, isSingle, { _tag: "Extend", visibilityMs })
      return DateTime.unsafeMake(settled?.visibleAt ?? (yield* Clock.currentTimeMillis))
    })

  const releaseLeases = (
    queue: string,
    leases: ReadonlyArray<Lease>,
    options: ReleaseOptions,
    isSingle: boolean
  ) =>
    Effect.gen(function* () {
      const checked = yield* decodeReleaseOptions(options)
      const delayMs = checked.delay ?? 0
      const error = checked.error === undefined ? null : truncate(checked.error)
      const { queue: valid, settled } = yield* settle(queue, leases, isSingle, {
        _tag: "Release",
        delayMs,
        error
      })
      if (settled === undefined) return []
      const dead = new Set(settled.dead)
      yield* Metrics.count(Metrics.deadLettered, valid, dead.size)
      yield* Metrics.count(Metrics.released, valid, leases.length - dead.size)
      return leases.map((lease): ReleaseOutcome => (dead.has(lease.id) ? "dead" : "released"))
    })

  /** Settles each lease on its own (the consumer's extender and shutdown): the lost ones are reported, not failed. */
  const settleEach = (queue: QueueName, leases: ReadonlyArray<Lease>, settlement: QueueStore.Settlement) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      store.settle(queue, {
        leases: leases.map((lease) => ({ id: lease.id, lease: lease.lease })),
        settlement,
        atomic: false,
        now
      })
    )

  return {
    settleEach,
    delete: (queue: string, lease: Lease) => single(deleteLeases(queue, [lease], true)),
    deleteBatch: (queue: string, leases: ReadonlyArray<Lease>) => deleteLeases(queue, leases, false),
    archive: (queue: string, lease: Lease) => single(archiveLeases(queue, [lease], true)),
    archiveBatch: (queue: string, leases: ReadonlyArray<Lease>) => archiveLeases(queue, leases, false),
    extendVisibility: (queue: string, lease: Lease, options: ExtendOptions = {}) =>
      single(extendLeases(queue, [lease], options, true)),
    extendVisibilityBatch: (queue: string, leases: ReadonlyArray<Lease>, options: ExtendOptions = {}) =>
      extendLeases(queue, leases, options, false),
    release: (queue: string, lease: Lease, options: ReleaseOptions = {}) =>
      single(
        Effect.map(releaseLeases(queue, [lease], options, true), (outcomes) => outcomes[0] ?? "released")
      ),
    releaseBatch: (queue: string, leases: ReadonlyArray<Lease>, options: ReleaseOptions = {}) =>
      releaseLeases(queue, leases, options, false)
  }
}
