/**
 * plainjob (SQLite, better-sqlite3) as its README shows: `defineQueue({ connection: better(db) })`,
 * `queue.add` / `queue.addMany`, and `defineWorker(type, handler, { queue }).start()`. A plainjob
 * worker runs one job at a time, so concurrency N is N workers on the queue in one process (the
 * README scales out with more workers). Done jobs are kept (status done), as Keel keeps its archive.
 */
import Database from "better-sqlite3"
import { better, defineQueue, defineWorker, JobStatus } from "plainjob"
import { main, queueName } from "../workload.js"

const silent = {
  error: () => undefined,
  warn: () => undefined,
  info: () => undefined,
  debug: () => undefined
}

await main(async (job) => {
  const queue = defineQueue({ connection: better(new Database(job.target)), logger: silent })
  return {
    enqueue: async (payload) => queue.add(queueName, payload),
    enqueueBatch: async (payloads) => queue.addMany(queueName, [...payloads]),
    consume: async (concurrency, handled) => {
      const workers = Array.from({ length: concurrency }, () =>
        defineWorker(queueName, async () => handled(), { queue, logger: silent })
      )
      const running = workers.map((worker) => worker.start())
      return {
        stop: async () => {
          await Promise.all(workers.map((worker) => worker.stop()))
          await Promise.all(running)
        }
      }
    },
    pending: async () =>
      queue.countJobs({ type: queueName, status: JobStatus.Pending }) +
      queue.countJobs({ type: queueName, status: JobStatus.Processing }),
    close: async () => queue.close()
  }
})
