/** A reservation benchmark process doing Keel's statements by hand with the raw driver (see `worker.ts`). */
import { serve } from "./worker.js"
import { rawPostgres, rawSqlite } from "./workload.js"

await serve(async (job) =>
  job.dsn.startsWith("sqlite:")
    ? rawSqlite(job.dsn.slice("sqlite:".length), job.directory)
    : rawPostgres(job.dsn, job.directory)
)
