/**
 * The options of `consume`, checked once when the consumer starts: each out-of-range option is an
 * `InvalidOption` naming it, before anything is read or registered.
 */
import { Effect } from "effect"
import type { ConsumeOptions } from "../Options.js"
import { InvalidOption } from "../QueueError.js"
import { duration, optionalDuration, optionalInteger, visibilityTimeout } from "./validate.js"

/** The options of one consumer, checked. */
export const checkOptions = (options: ConsumeOptions) =>
  Effect.gen(function* () {
    const concurrency = yield* optionalInteger("concurrency", options.concurrency, { min: 1, max: 1000 }, 1)
    const prefetch = yield* optionalInteger("prefetch", options.prefetch, { min: 0, max: 1000 }, 32)
    const pollMs = yield* optionalDuration(
      "pollInterval",
      options.pollInterval,
      { min: 1, max: 3_600_000 },
      1_000
    )
    const maintenanceMs = yield* optionalDuration(
      "maintenanceInterval",
      options.maintenanceInterval,
      { min: 10, max: 24 * 3_600_000 },
      30_000
    )
    const shutdownMs = yield* optionalDuration(
      "shutdownTimeout",
      options.shutdownTimeout,
      { min: 0, max: 3_600_000 },
      10_000
    )
    const handlerTimeoutMs =
      options.handlerTimeout === undefined
        ? undefined
        : yield* duration("handlerTimeout", options.handlerTimeout, { min: 1, max: 7 * 24 * 3_600_000 })
    const backoffInitialMs = yield* optionalDuration(
      "backoff.initial",
      options.backoff?.initial,
      { min: 0, max: 24 * 3_600_000 },
      1_000
    )
    const backoffMaxMs = yield* optionalDuration(
      "backoff.max",
      options.backoff?.max,
      { min: backoffInitialMs, max: 365 * 24 * 3_600_000 },
      Math.max(backoffInitialMs, 5 * 60_000)
    )
    const onSuccess = options.onSuccess ?? "archive"
    if (onSuccess !== "archive" && onSuccess !== "delete") {
      return yield* new InvalidOption({
        option: "onSuccess",
        value: String(onSuccess),
        expected: '"archive" or "delete"'
      })
    }
    const visibilityMs = yield* visibilityTimeout(options.visibilityTimeout)
    return {
      concurrency,
      prefetch,
      pollMs,
      maintenanceMs,
      shutdownMs,
      handlerTimeoutMs,
      backoffInitialMs,
      backoffMaxMs,
      onSuccess,
      visibilityMs
    }
  })
