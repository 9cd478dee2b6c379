/** A reservation benchmark process using Keel's registry (see `worker.ts`). */
import { keel } from "./keel.js"
import { serve } from "./worker.js"

await serve((job) => keel(job.dsn, job.directory, job.occupancy ?? false, job.busyTimeoutMs))
