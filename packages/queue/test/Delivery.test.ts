/**
 * Delivery accounting with real producer and consumer processes, one consumer killed with SIGKILL
 * mid-lease (a SIGKILL only happens to a process).
 */
import { describe, expect, layer } from "@effect/vitest"
import { Queue } from "@keel/queue"
import { Processes, TestDatabase } from "@keel/testkit"
import { Effect } from "effect"
import {
  archiveRows,
  eventually,
  fixture,
  messageRows,
  layer as queueLayer,
  uniqueName
} from "./support/QueueTest.js"

const range = (n: number) => Array.from({ length: n }, (_, i) => i)

/** One lease of one message, as a consumer logged it. */
interface LoggedLease {
  readonly consumer: number
  readonly id: number
  readonly lease: string
  readonly leasedAt: number
  visibleAt: number
  acked: boolean
}

/** Parses a consumer's log into its leases, plus every line kind it printed. */
const parseConsumer = (consumer: number, stdout: string) => {
  const leases = new Map<string, LoggedLease>()
  const kinds = new Map<string, number>()
  for (const line of stdout.split("\n")) {
    const [kind, id, lease, a, b] = line.split(" ")
    if (kind === undefined || kind === "") continue
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1)
    const key = `${id} ${lease}`
    if (kind === "L") {
      leases.set(key, {
        consumer,
        id: Number(id),
        lease: lease ?? "",
        leasedAt: Number(a),
        visibleAt: Number(b),
        acked: false
      })
    }
    const known = leases.get(key)
    if (kind === "X" && known !== undefined) known.visibleAt = Math.max(known.visibleAt, Number(a))
    if (kind === "A" && known !== undefined) known.acked = true
  }
  return { leases: [...leases.values()], kinds }
}

const inFlight = (stdout: string) => parseConsumer(0, stdout).leases.filter((lease) => !lease.acked)

/**
 * Producers and consumers in separate processes on one database; consumer 0 is slow and is
 * SIGKILLed while it holds leases. Checks every delivery-accounting guarantee from the logs and
 * the database.
 */
const deliveryAccounting = (options: {
  readonly producers: number
  readonly perProducer: number
  readonly consumers: number
}) =>
  Effect.scoped(
    Effect.gen(function* () {
      const info = yield* TestDatabase.TestDatabase
      const queues = yield* Queue.Queues
      const name = uniqueName("accounting")
      yield* queues.createQueue(name, { maxDeliveries: 100 })
      const total = options.producers * options.perProducer
      const visibilityMs = 2_000
      const consumerScript = fixture("consumer")
      const producerScript = fixture("producer")
      const consumers = yield* Effect.forEach(range(options.consumers), (index) =>
        Processes.spawn({
          script: consumerScript,
          // Consumer 0 is slow (300-400 ms per message) so that it always holds leases.
          args: [
            info.dsn,
            name,
            index === 0 ? "300-400" : "0-3",
            index === 0 ? "2" : "4",
            String(visibilityMs)
          ]
        })
      )
      yield* eventually(
        "every consumer to start",
        Effect.sync(() => consumers.every((c) => c.stdout().includes("READY"))),
        "60 seconds"
      )
      const startAt = Processes.startAt("1 second")
      const producers = yield* Effect.forEach(range(options.producers), (index) =>
        Processes.spawn({
          script: producerScript,
          args: [info.dsn, name, String(options.perProducer)],
          env: { KEEL_START_AT: startAt, KEEL_CHILD_INDEX: String(index) }
        })
      )
      const victim = consumers[0]
      if (victim === undefined) return yield* Effect.die("no consumers")
      yield* eventually(
        "the slow consumer to hold leases",
        Effect.sync(
          () => parseConsumer(0, victim.stdout()).leases.length >= 3 && inFlight(victim.stdout()).length > 0
        ),
        "60 seconds"
      )
      yield* victim.kill("SIGKILL")
      const killed = yield* victim.exited
      expect(killed.signal).toBe("SIGKILL")
      const orphans = inFlight(killed.stdout)
      expect(orphans.length).toBeGreaterThan(0)

      const produced = yield* Effect.forEach(producers, (producer) => producer.exited)
      for (const exit of produced)
        expect({ code: exit.code, stderr: exit.stderr }).toEqual({ code: 0, stderr: "" })
      const sent = produced.flatMap((exit) =>
        exit.stdout.split("\n").flatMap((line) => (line.startsWith("S ") ? [Number(line.slice(2))] : []))
      )
      expect(sent.length).toBe(total)
      expect(new Set(sent).size).toBe(total)

      yield* eventually(
        "every message to be archived",
        Effect.map(
          Effect.all([archiveRows(name), messageRows(name)]),
          ([archived, left]) => archived === total && left === 0
        ),
        "60 seconds"
      )
      const survivors = consumers.slice(1)
      yield* Effect.forEach(survivors, (consumer) => consumer.kill("SIGTERM"), { discard: true })
      const stopped = yield* Effect.forEach(survivors, (consumer) => consumer.exited)
      for (const exit of stopped)
        expect({ code: exit.code, stderr: exit.stderr }).toEqual({ code: 0, stderr: "" })

      const logs = [
        parseConsumer(0, killed.stdout),
        ...stopped.map((exit, i) => parseConsumer(i + 1, exit.stdout))
      ]
      for (const log of logs) {
        for (const kind of ["F", "R", "LL"])
          expect({ kind, count: log.kinds.get(kind) ?? 0 }).toEqual({ kind, count: 0 })
      }
      const leases = logs.flatMap((log) => log.leases)
      const byMessage = new Map<number, Array<LoggedLease>>()
      for (const lease of leases) byMessage.set(lease.id, [...(byMessage.get(lease.id) ?? []), lease])

      // Every message processed at least once; none acknowledged twice. (The archive's primary key
      // makes a second archive impossible; the logs show no two consumers both saw their ack succeed.)
      expect([...byMessage.keys()].sort((a, b) => a - b)).toEqual([...sent].sort((a, b) => a - b))
      for (const [id, all] of byMessage) {
        const acks = all.filter((lease) => lease.acked).length
        const last = [...all].sort((a, b) => a.leasedAt - b.leasedAt).at(-1)
        // An ack missing from the logs is the killed consumer's: it committed, then SIGKILL came
        // before the log line. The archive has the message, and nobody leased it after.
        const explained = acks === 1 || (acks === 0 && last?.consumer === 0)
        expect({ id, acks, explained }).toEqual({ id, acks: acks === 0 ? 0 : 1, explained: true })
      }
      // No message leased to two consumers at once: each later lease starts after the earlier one expired.
      let redeliveries = 0
      for (const [id, all] of byMessage) {
        const ordered = [...all].sort((a, b) => a.leasedAt - b.leasedAt)
        for (let i = 1; i < ordered.length; i++) {
          const before = ordered[i - 1]
          const after = ordered[i]
          if (before === undefined || after === undefined) continue
          redeliveries++
          expect({ id, earlierAcked: before.acked }).toEqual({ id, earlierAcked: false })
          expect(after.leasedAt).toBeGreaterThanOrEqual(before.visibleAt)
        }
      }
      // The killed consumer's messages came back after their visibility timeout and others processed them.
      const takenOver = orphans.filter((orphan) => {
        const later = (byMessage.get(orphan.id) ?? []).filter((lease) => lease.consumer !== 0)
        for (const lease of later) expect(lease.leasedAt).toBeGreaterThanOrEqual(orphan.visibleAt)
        return later.some((lease) => lease.acked)
      })
      expect(takenOver.length).toBeGreaterThan(0)
      expect(redeliveries).toBeGreaterThanOrEqual(takenOver.length)
      // The survivors deregistered on SIGTERM. The killed consumer could not: its registration stays
      // until a maintenance pass finds it stale (30 s without a heartbeat), which a slow run reaches.
      const victimId = /READY (\S+)/.exec(killed.stdout)?.[1]
      expect(victimId).toBeDefined()
      const registered = (yield* queues.listWorkers(name)).map((worker) => worker.id)
      expect(registered.filter((id) => id !== victimId)).toEqual([])
    })
  )

if (TestDatabase.kinds.includes("sqlite")) {
  describe("Queue processes: delivery accounting [sqlite]", () => {
    layer(queueLayer("sqlite"), { timeout: 180_000, excludeTestServices: true })((it) => {
      it.effect(
        "4 producer and 4 consumer processes on one SQLite file: each message acknowledged once, none left, no overlapping leases, a SIGKILLed consumer's messages taken over",
        () => deliveryAccounting({ producers: 4, perProducer: 250, consumers: 4 }),
        { timeout: 90_000 }
      )
    })
  })
}

if (TestDatabase.kinds.includes("postgres")) {
  describe("Queue processes: delivery accounting [postgres]", () => {
    layer(queueLayer("postgres", {}), { timeout: 180_000, excludeTestServices: true })((it) => {
      it.effect(
        "4 producer and 8 consumer processes on PostgreSQL: each message acknowledged once, none left, no overlapping leases, a SIGKILLed consumer's messages taken over",
        () => deliveryAccounting({ producers: 4, perProducer: 250, consumers: 8 }),
        { timeout: 90_000 }
      )
    })
  })
}
