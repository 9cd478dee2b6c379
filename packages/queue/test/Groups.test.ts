/**
 * Ordered groups on every backend and the memory store: a group's messages are leased one at a
 * time, oldest first, whatever their priority; a delayed or released one holds its group; a dead
 * letter lets the next one run; and with 4 consumer processes no two handlers of a group ever run
 * at once and each group runs in send order.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Queue } from "@keel/queue"
import { Processes, TestDatabase } from "@keel/testkit"
import { Effect, TestClock } from "effect"
import {
  eventually,
  fixture,
  layer as queueLayer,
  storeLayer,
  stores,
  uniqueName,
  withTestClock
} from "./support/QueueTest.js"

for (const store of stores) {
  layer(storeLayer(store), { timeout: 120_000, excludeTestServices: true })(
    `ordered groups [${store}]`,
    (it) => {
      it.effect(
        "only a group's oldest message is leased; priority orders across groups, not within one",
        () =>
          withTestClock(
            Effect.gen(function* () {
              const queues = yield* Queue.Queues
              const name = uniqueName("groups")
              yield* queues.createQueue(name, { maxDeliveries: 2 })
              const a1 = yield* queues.send(name, "a1", { group: "a" })
              const a2 = yield* queues.send(name, "a2", { group: "a" })
              const a3 = yield* queues.send(name, "a3", { group: "a", priority: -100 })
              const b1 = yield* queues.send(name, "b1", { group: "b" })
              const plain = yield* queues.send(name, "plain")
              const first = yield* queues.read(name, { qty: 10, visibilityTimeout: "10 seconds" })
              expect(first.map((m) => m.id).sort((x, y) => x - y)).toEqual([a1, b1, plain])
              expect(first.find((m) => m.id === a1)?.group).toBe("a")
              expect(yield* queues.read(name, { qty: 10 })).toEqual([])
              const leaseOf = (id: number) => {
                const found = first.find((m) => m.id === id)
                if (found === undefined) throw new Error(`${id} not leased`)
                return found
              }
              yield* queues.archive(name, leaseOf(a1))
              yield* queues.archive(name, leaseOf(b1))
              yield* queues.archive(name, leaseOf(plain))
              const [second] = yield* queues.read(name, { qty: 10, visibilityTimeout: "10 seconds" })
              expect(second?.id).toBe(a2)
              if (second === undefined) return yield* Effect.die("not leased")
              // Released with a delay, a2 holds its group until it runs again.
              yield* queues.release(name, second, { delay: "1 minute", error: "later" })
              expect(yield* queues.read(name, { qty: 10 })).toEqual([])
              yield* TestClock.adjust("1 minute")
              const [again] = yield* queues.read(name, { qty: 10, visibilityTimeout: "10 seconds" })
              expect(again?.id).toBe(a2)
              if (again === undefined) return yield* Effect.die("not leased")
              // Its last delivery fails: dead-lettered, and the group moves on.
              expect(yield* queues.release(name, again, { error: "boom" })).toBe("dead")
              expect((yield* queues.read(name, { qty: 10 })).map((m) => m.id)).toEqual([a3])
              expect((yield* queues.getMessage(name, a3)).group).toBe("a")
            })
          )
      )

      it.effect("bad group names are InvalidOption; nothing is stored", () =>
        Effect.gen(function* () {
          const queues = yield* Queue.Queues
          const name = uniqueName("groups-invalid")
          yield* queues.createQueue(name)
          for (const group of ["", "g".repeat(129), "tab\there"]) {
            expect(yield* Effect.flip(queues.send(name, 1, { group }))).toMatchObject({
              _tag: "InvalidOption",
              option: "group"
            })
          }
          expect(yield* queues.metrics(name)).toMatchObject({ depth: 0 })
        })
      )
    }
  )
}

/** Per group, the handler runs of the consumers' logs: [id, start, end]. */
const runsByGroup = (logs: ReadonlyArray<string>, groupOf: ReadonlyMap<number, string>) => {
  const starts = new Map<number, number>()
  const runs = new Map<string, Array<readonly [number, number, number]>>()
  for (const log of logs) {
    for (const line of log.split("\n")) {
      const [kind, id, at] = line.split(" ")
      if (kind === "S") starts.set(Number(id), Number(at))
      if (kind === "E") {
        const group = groupOf.get(Number(id)) ?? "?"
        const list = runs.get(group) ?? []
        list.push([Number(id), starts.get(Number(id)) ?? Number.NaN, Number(at)])
        runs.set(group, list)
      }
    }
  }
  for (const list of runs.values()) list.sort((x, y) => x[1] - y[1] || x[2] - y[2])
  return runs
}

const processes = (kind: TestDatabase.Kind) =>
  layer(queueLayer(kind), { timeout: 180_000, excludeTestServices: true })((it) => {
    it.scoped("4 consumer processes: each group one at a time, in send order; every message once", () =>
      Effect.gen(function* () {
        const queues = yield* Queue.Queues
        const info = yield* TestDatabase.TestDatabase
        const name = uniqueName("groups-processes")
        yield* queues.createQueue(name)
        const groups = ["red", "green", "blue"]
        const perGroup = 25
        const messages = Array.from({ length: groups.length * perGroup }, (_, index) => ({
          payload: index,
          group: groups[index % groups.length]
        }))
        const consumers = yield* Effect.forEach([0, 1, 2, 3], () =>
          Processes.spawn({ script: fixture("consumer"), args: [info.dsn, name, "1-4", "4", "5000", "25"] })
        )
        yield* eventually(
          "every consumer to start",
          Effect.sync(() => consumers.every((c) => c.stdout().includes("READY"))),
          "60 seconds"
        )
        const ids = yield* queues.sendBatch(name, messages)
        const groupOf = new Map(ids.map((id, index) => [id, messages[index]?.group ?? "?"]))
        yield* eventually(
          "every message to be archived",
          Effect.map(queues.metrics(name), (m) => m.archived === messages.length),
          "120 seconds"
        )
        // A handler's end is logged before its ack, but the pipe may deliver the line after the
        // archive count is seen: wait for as many ends as messages (more would be a duplicate run).
        const ends = () => consumers.reduce((sum, c) => sum + (c.stdout().match(/^E /gm) ?? []).length, 0)
        yield* eventually(
          "every handler's end to be read",
          Effect.sync(() => ends() >= messages.length),
          "30 seconds"
        )
        expect(ends()).toBe(messages.length)
        const runs = runsByGroup(
          consumers.map((c) => c.stdout()),
          groupOf
        )
        for (const group of groups) {
          const list = runs.get(group) ?? []
          expect(list.map(([id]) => id)).toEqual(ids.filter((id) => groupOf.get(id) === group))
          for (let index = 1; index < list.length; index++) {
            const previous = list[index - 1]
            const current = list[index]
            if (previous === undefined || current === undefined) continue
            // The next one starts only after the previous one ended (in whichever process).
            expect(current[1]).toBeGreaterThanOrEqual(previous[2])
          }
        }
        const spread = consumers.map((c) => (c.stdout().match(/^S /gm) ?? []).length)
        console.log(`ordered groups across processes [${kind}]: runs per consumer ${spread.join(", ")}`)
        expect(yield* queues.metrics(name)).toMatchObject({ depth: 0, inFlight: 0, dead: 0 })
      })
    )
  })

describe("ordered groups across processes", () => {
  for (const kind of TestDatabase.kinds) if (kind === "sqlite" || kind === "postgres") processes(kind)
})
