/**
 * The `queues` routes: each calls the queue service and returns what it returned. The only thing
 * added here is long polling for `read` (`wait`): the read is repeated, with growing pauses, until
 * a message arrives, the wait ends or the server begins to shut down.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import type { Schemas } from "@keel/queue"
import * as Queue from "@keel/queue/Queue"
import * as QueueError from "@keel/queue/QueueError"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { KeelApi, maxReadWaitMs } from "../Api.js"
import { Lifecycle } from "../Lifecycle.js"

/** The first pause between reads of a long poll; it doubles up to `maxPollPause`. */
const firstPollPause = Duration.millis(25)
const maxPollPause = Duration.millis(500)

/** The `queues` group. */
export const layer = HttpApiBuilder.group(KeelApi, "queues", (handlers) =>
  Effect.gen(function* () {
    const queue = yield* Queue.Queues
    const lifecycle = yield* Lifecycle

    /** `read`, repeated while the queue is empty, for at most `wait` milliseconds. */
    const readWaiting = (name: string, options: Queue.ReadOptions, wait: number | undefined) =>
      Effect.gen(function* () {
        if (wait === undefined || wait === 0) return yield* queue.read(name, options)
        if (!Number.isInteger(wait) || wait < 0 || wait > maxReadWaitMs) {
          return yield* new QueueError.InvalidOption({
            option: "wait",
            value: String(wait),
            expected: `an integer number of milliseconds from 0 to ${maxReadWaitMs}`
          })
        }
        const deadline = (yield* Clock.currentTimeMillis) + wait
        let pause = firstPollPause
        while (true) {
          const messages = yield* queue.read(name, options)
          const left = deadline - (yield* Clock.currentTimeMillis)
          if (messages.length > 0 || left <= 0 || (yield* lifecycle.stopping)) return messages
          yield* Effect.raceFirst(
            Effect.sleep(Duration.min(pause, Duration.millis(left))),
            lifecycle.whenStopping
          )
          pause = Duration.min(Duration.times(pause, 2), maxPollPause)
        }
      })

    const lease = (id: number, token: string): Schemas.Lease => ({ id, lease: token })

    return handlers
      .handle("create", ({ payload: { name, ...settings } }) => queue.createQueue(name, settings))
      .handle("list", () => Effect.map(queue.listQueues, (queues) => ({ queues })))
      .handle("info", ({ path }) => queue.getQueue(path.name))
      .handle("update", ({ path, payload }) => queue.updateQueue(path.name, payload))
      .handle("delete", ({ path, urlParams }) => queue.deleteQueue(path.name, { force: urlParams.force }))
      .handle("purge", ({ path, payload }) => queue.purgeQueue(path.name, { archive: payload.archive }))
      .handle("send", ({ path, payload: { payload, ...options } }) =>
        Effect.map(queue.send(path.name, payload, options), (id) => ({ id }))
      )
      .handle("sendBatch", ({ path, payload }) =>
        Effect.map(queue.sendBatch(path.name, payload.messages), (ids) => ({ ids }))
      )
      .handle("read", ({ path, payload: { wait, ...options } }) =>
        Effect.map(readWaiting(path.name, options, wait), (messages) => ({ messages }))
      )
      .handle("deleteMessage", ({ path, payload }) => queue.delete(path.name, lease(path.id, payload.lease)))
      .handle("deleteMessages", ({ path, payload }) => queue.deleteBatch(path.name, payload.leases))
      .handle("archiveMessage", ({ path, payload }) =>
        queue.archive(path.name, lease(path.id, payload.lease))
      )
      .handle("archiveMessages", ({ path, payload }) => queue.archiveBatch(path.name, payload.leases))
      .handle("getMessage", ({ path }) => queue.getMessage(path.name, path.id))
      .handle("progressMessage", ({ path, payload }) =>
        queue.progress(path.name, lease(path.id, payload.lease), payload.progress)
      )
      .handle("cancelMessage", ({ path }) =>
        Effect.map(queue.cancel(path.name, path.id), (outcome) => ({ outcome }))
      )
      .handle("updateMessage", ({ path, payload }) => queue.update(path.name, path.id, payload))
      .handle("releaseMessage", ({ path, payload: { lease: token, ...options } }) =>
        Effect.map(queue.release(path.name, lease(path.id, token), options), (outcome) => ({ outcome }))
      )
      .handle("releaseMessages", ({ path, payload: { leases, ...options } }) =>
        Effect.map(queue.releaseBatch(path.name, leases, options), (outcomes) => ({ outcomes }))
      )
      .handle("extendMessage", ({ path, payload: { lease: token, ...options } }) =>
        Effect.map(queue.extendVisibility(path.name, lease(path.id, token), options), (visibleAt) => ({
          visibleAt
        }))
      )
      .handle("extendMessages", ({ path, payload: { leases, ...options } }) =>
        Effect.map(queue.extendVisibilityBatch(path.name, leases, options), (visibleAt) => ({ visibleAt }))
      )
      .handle("archive", ({ path, urlParams }) =>
        Effect.map(queue.listArchive(path.name, urlParams), (messages) => ({ messages }))
      )
      .handle("deadLetters", ({ path, urlParams }) =>
        Effect.map(queue.deadLetters(path.name, urlParams), (messages) => ({ messages }))
      )
      .handle("requeueDead", ({ path, payload }) =>
        Effect.map(queue.requeueDead(path.name, payload), (ids) => ({ ids }))
      )
      .handle("deleteDead", ({ path, payload }) =>
        Effect.map(queue.deleteDead(path.name, payload), (ids) => ({ ids }))
      )
      .handle("listMessages", ({ path, urlParams }) =>
        Effect.map(queue.listMessages(path.name, urlParams), (messages) => ({ messages }))
      )
      .handle("metrics", ({ path }) => queue.metrics(path.name))
  })
)
