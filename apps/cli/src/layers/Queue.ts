/** The queue service and the schedules a command opens (`keel queue …`, `keel schedule …`). */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { Queue, Schedule } from "@keel/queue"
import * as Keel from "@keel/server/Keel"
import type { Backend } from "@keel/sql"
import * as Layer from "effect/Layer"
import type * as Globals from "../GlobalOptions.js"
import { database } from "./Database.js"

/**
 * The queue service (config from `KEEL_QUEUE_*`) and the database under it, so a command can put
 * several of the queue's writes in one transaction (`Retry.transaction`): they join it.
 */
export const queue: Layer.Layer<
  Queue.Queues | SqlClient.SqlClient | Backend.Backend,
  Layer.Layer.Error<typeof Keel.queue> | Layer.Layer.Error<typeof database>,
  Globals.Globals
> = Layer.provideMerge(Keel.queue, database)

/** The schedules over the queue service and the database. */
export const schedules: Layer.Layer<
  Schedule.Schedules | Queue.Queues,
  Layer.Layer.Error<typeof Keel.schedules> | Layer.Layer.Error<typeof queue>,
  Globals.Globals
> = Layer.provideMerge(Keel.schedules, queue)
