/**
 * The options of `consume`, decoded once when the consumer starts (`Options.ConsumeSettings`):
 * each out-of-range option is an `InvalidOption` naming it, before anything is read or registered.
 * The worker options among them are checked by `registerWorker`.
 */
import * as Either from "effect/Either"
import * as Backoff from "../Backoff.js"
import { type ConsumeOptions, ConsumeSettings } from "../Options.js"
import { decoder } from "./optionSchema.js"

const decodeSettings = decoder(ConsumeSettings)

/** The options of one consumer, checked, with their defaults. */
export const checkOptions = (options: ConsumeOptions) =>
  Either.flatMap(decodeSettings(options), (given) => {
    const backoffInitialMs = given.backoff?.initial ?? 1_000
    const backoffMaxMs = Backoff.capOf("backoff", backoffInitialMs, given.backoff?.max, options.backoff?.max)
    if (Either.isLeft(backoffMaxMs)) return Either.left(backoffMaxMs.left)
    return Either.right({
      concurrency: given.concurrency ?? 1,
      prefetch: given.prefetch ?? 32,
      pollMs: given.pollInterval ?? 1_000,
      maintenanceMs: given.maintenanceInterval ?? 30_000,
      shutdownMs: given.shutdownTimeout ?? 10_000,
      handlerTimeoutMs: given.handlerTimeout,
      backoffInitialMs,
      backoffMaxMs: backoffMaxMs.right,
      onSuccess: given.onSuccess ?? "archive",
      visibilityMs: given.visibilityTimeout
    })
  })
