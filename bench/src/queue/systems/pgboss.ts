/**
 * pg-boss 10 (PostgreSQL) as its README and docs show: `new PgBoss(url)`, `start()`,
 * `createQueue`, `send` and `insert` (batch), and `work(name, options, handler)`.
 *
 * Tuning: a pg-boss 10 worker fetches `batchSize` jobs, runs the handler on the array, completes
 * them, then waits out the rest of its polling interval (at least 0.5 s) before fetching again. With
 * the default `batchSize` of 1 that is at most two jobs per second per worker, so, as pg-boss's docs
 * advise for throughput, each `work()` fetches 100 jobs per poll (`batchSize: 100`) at the minimum
 * polling interval (`pollingIntervalSeconds: 0.5`); concurrency N is N `work()` registrations. The
 * `pg-boss fetch+complete` rows use the documented manual loop instead (N loops, each `fetch` one
 * job, run it, `complete` it, no polling delay while jobs remain).
 */
import PgBoss from "pg-boss"
import { type Consume, main, queueName } from "../workload.js"

await main(async (job) => {
  const boss = new PgBoss({ connectionString: job.target })
  boss.on("error", (error) => console.error("pg-boss:", error.message))
  await boss.start()
  await boss.createQueue(queueName)
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
  const manual: Consume = async (concurrency, handled) => {
    let running = true
    const loops = Array.from({ length: concurrency }, async () => {
      while (running) {
        const jobs = await boss.fetch(queueName, { batchSize: 1 })
        if (jobs.length === 0) {
          await sleep(1)
          continue
        }
        for (const _ of jobs) handled()
        await boss.complete(
          queueName,
          jobs.map((fetched) => fetched.id)
        )
      }
    })
    return {
      stop: async () => {
        running = false
        await Promise.all(loops)
      }
    }
  }
  return {
    enqueue: (payload) => boss.send(queueName, { ...payload }),
    enqueueBatch: (payloads) =>
      boss.insert(payloads.map((payload) => ({ name: queueName, data: { ...payload } }))),
    consume: async (concurrency, handled) => {
      for (let i = 0; i < concurrency; i++) {
        await boss.work(queueName, { batchSize: 100, pollingIntervalSeconds: 0.5 }, async (jobs) => {
          for (const _ of jobs) handled()
        })
      }
      return {
        stop: async () => {
          await boss.offWork(queueName)
          // offWork returns before the workers' loops end; let them finish their last poll.
          await sleep(600)
        }
      }
    },
    pending: () => boss.getQueueSize(queueName, { before: "completed" }),
    close: () => boss.stop({ graceful: false, close: true }),
    variants: [
      {
        system: "pg-boss fetch+complete",
        note: "manual loop per slot: fetch 1 job, handle, complete; no polling delay",
        consume: manual
      }
    ]
  }
})
