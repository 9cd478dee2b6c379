/**
 * BullMQ on the local Redis, the in-memory reference, as its docs show: `new Queue(name,
 * { connection, prefix })`, `add` and `addBulk`, and `new Worker(name, processor, { connection,
 * prefix, concurrency })`. Completed jobs are kept (BullMQ's default), as Keel keeps its archive.
 * Every key lives under a unique prefix; the queue is obliterated at the end.
 */
import { Queue, Worker } from "bullmq"
import { main, queueName } from "../workload.js"

const connection = { host: "127.0.0.1", port: 6379, maxRetriesPerRequest: null }

await main(async (job) => {
  const prefix = job.target
  const queue = new Queue(queueName, { connection, prefix })
  await queue.waitUntilReady()
  return {
    enqueue: (payload) => queue.add("job", payload),
    enqueueBatch: (payloads) => queue.addBulk(payloads.map((payload) => ({ name: "job", data: payload }))),
    consume: async (concurrency, handled) => {
      const worker = new Worker(queueName, async () => handled(), { connection, prefix, concurrency })
      await worker.waitUntilReady()
      return { stop: () => worker.close() }
    },
    pending: () => queue.getJobCountByTypes("waiting", "active", "delayed", "prioritized"),
    close: async () => {
      await queue.obliterate({ force: true })
      await queue.close()
    }
  }
})
