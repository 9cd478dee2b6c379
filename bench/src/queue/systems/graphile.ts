/**
 * graphile-worker (PostgreSQL) as its docs show: `makeWorkerUtils` (migrate, `addJob`, and
 * `addJobs` for batches), and `run({ connectionString, concurrency, taskList })` with its defaults
 * (LISTEN/NOTIFY wake-ups, 2 s poll fallback; completed jobs are deleted). Logging is silenced.
 */
import { Logger, makeWorkerUtils, run } from "graphile-worker"
import pg from "pg"
import { main, queueName } from "../workload.js"

const logger = new Logger(() => () => undefined)

await main(async (job) => {
  const utils = await makeWorkerUtils({ connectionString: job.target, logger })
  await utils.migrate()
  const counter = new pg.Client({ connectionString: job.target })
  await counter.connect()
  return {
    enqueue: (payload) => utils.addJob(queueName, { ...payload }),
    enqueueBatch: (payloads) =>
      utils.addJobs(payloads.map((payload) => ({ identifier: queueName, payload: { ...payload } }))),
    consume: async (concurrency, handled) => {
      const runner = await run({
        connectionString: job.target,
        concurrency,
        noHandleSignals: true,
        logger,
        taskList: { [queueName]: async () => handled() }
      })
      return { stop: () => runner.stop() }
    },
    pending: async () => {
      const result = await counter.query<{ n: string }>("SELECT COUNT(*) AS n FROM graphile_worker.jobs")
      return Number(result.rows[0]?.n)
    },
    close: async () => {
      await counter.end()
      await utils.release()
    }
  }
})
