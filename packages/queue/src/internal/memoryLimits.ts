/**
 * The memory store's ordered-group rule and limits, the same as `sqlLimits.ts` states them in SQL:
 * a message of a group may be leased while fewer than `groupConcurrency` older messages of its
 * group are queued and (when the queue blocks groups on dead letters) no older message of its
 * group is a dead letter; a lease takes at most the concurrency limit minus the messages leased
 * now, and at most what is left of the rate window.
 */
import type * as QueueStore from "../QueueStore.js"
import { type Budget, budgetOf } from "./limits.js"
import { type Archived, leased, type Message } from "./memoryMessages.js"

/** Which of a queue's messages its group lets run (`queued`: the queue's messages, `archive`: every archived one). */
export const groupRule = (
  queue: QueueStore.QueueRow,
  queued: ReadonlyArray<Message>,
  archive: Iterable<Archived>
): ((message: Message) => boolean) => {
  const members = new Map<string, Array<number>>()
  for (const message of queued) {
    if (message.group === null) continue
    const ids = members.get(message.group) ?? []
    ids.push(message.id)
    members.set(message.group, ids)
  }
  for (const ids of members.values()) ids.sort((a, b) => a - b)
  const firstDead = new Map<string, number>()
  if (queue.groupBlockOnDead) {
    for (const row of archive) {
      if (row.queueId !== queue.id || !row.dead || row.group === null) continue
      firstDead.set(row.group, Math.min(firstDead.get(row.group) ?? row.id, row.id))
    }
  }
  return (message) => {
    if (message.group === null) return true
    const ahead = members.get(message.group)?.indexOf(message.id) ?? 0
    const dead = firstDead.get(message.group)
    return ahead < queue.groupConcurrency && (dead === undefined || dead > message.id)
  }
}

/** How many of `wanted` a lease at `now` may take under the queue's limits (`window`: its rate window). */
export const budget = (
  queue: QueueStore.QueueRow,
  queued: ReadonlyArray<Message>,
  wanted: number,
  now: number,
  window: { readonly start: number; readonly count: number } | undefined
): Budget =>
  budgetOf(wanted, now, {
    concurrencyLimit: queue.concurrencyLimit,
    inFlight: queue.concurrencyLimit === null ? 0 : queued.filter((message) => leased(message, now)).length,
    rateLimit: queue.rateLimit,
    rateIntervalMs: queue.rateIntervalMs,
    window
  })
