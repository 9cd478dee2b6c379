/**
 * `keel queue …`: durable queues. Messages are acknowledged by id and lease token (both printed
 * by `read`); `consume` runs a shell command per message. The programs live in
 * `handlers/Queue.ts` and `handlers/Consume.ts`, loaded on demand.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Globals from "../Globals.js"
import * as Leaf from "../Leaf.js"
import { events } from "./Events.js"
import { duration, settings } from "./QueueSettings.js"

const handlers = () => import("../handlers/Queue.js")

const queue = Args.text({ name: "queue" }).pipe(
  Args.withDescription("Queue name: 1-64 of a-z, 0-9, _ and -.")
)
const messageId = Args.integer({ name: "id" }).pipe(Args.withDescription("Message id (printed by read)."))
const lease = Args.text({ name: "lease" }).pipe(Args.withDescription("Lease token (printed by read)."))

const createConfig = {
  globals: Globals.options,
  queue,
  ...settings,
  ifNotExists: Options.boolean("if-not-exists").pipe(
    Options.withDescription("Succeed, unchanged, when the queue already exists.")
  )
}
/** `keel queue create`'s parsed input. */
export type CreateInput = Command.Command.ParseConfig<typeof createConfig>

/** `keel queue create`. */
export const create = Command.make("create", createConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.create(input))
).pipe(Command.withDescription("Create a queue (exit 1 if it exists, unless --if-not-exists)."))

const configureConfig = { globals: Globals.options, queue, ...settings }
/** `keel queue configure`'s parsed input. */
export type ConfigureInput = Command.Command.ParseConfig<typeof configureConfig>

/** `keel queue configure`. */
export const configure = Command.make("configure", configureConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.configure(input))
).pipe(
  Command.withDescription("Change a queue's settings; absent flags keep their value, none removes a limit.")
)

const listConfig = { globals: Globals.options }
/** `keel queue list`'s parsed input. */
export type ListInput = Command.Command.ParseConfig<typeof listConfig>

/** `keel queue list`. */
export const list = Command.make("list", listConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.list(input))
).pipe(Command.withDescription("List queues with their settings."))

const infoConfig = { globals: Globals.options, queue }
/** `keel queue info`'s parsed input. */
export type InfoInput = Command.Command.ParseConfig<typeof infoConfig>

/** `keel queue info`. */
export const info = Command.make("info", infoConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.info(input))
).pipe(Command.withDescription("A queue's settings and current counts."))

const sendOptions = {
  delay: duration("delay", "Invisible for this long after the send"),
  priority: Options.integer("priority").pipe(
    Options.withDescription("Lower is delivered first, -32768 to 32767 (default 0)."),
    Options.optional
  ),
  maxDeliveries: Options.integer("max-deliveries").pipe(
    Options.withDescription(
      "Deliveries allowed before the message is dead-lettered, 1-1000 (default: the queue's)."
    ),
    Options.optional
  ),
  group: Options.text("group").pipe(
    Options.withDescription(
      "Ordered group: its messages run one at a time, in send order, across every consumer (1-128 characters)."
    ),
    Options.optional
  ),
  backoff: Options.text("backoff").pipe(
    Options.withDescription(
      "Retry delay after a failure: KIND[:BASE[:MAX]], KIND exponential, linear or fixed (e.g. fixed:30s, exponential:1s:1h; default: the consumer's)."
    ),
    Options.optional
  )
}

const sendConfig = {
  globals: Globals.options,
  queue,
  payload: Args.text({ name: "payload" }).pipe(
    Args.withDescription("The message: JSON text (default: all of stdin)."),
    Args.optional
  ),
  ...sendOptions,
  dedupKey: Options.text("dedup-key").pipe(
    Options.withDescription("Idempotency key: sending again with it returns the first message's id."),
    Options.optional
  ),
  dedupWindow: duration("dedup-window", "Hold the key this long; afterwards the key sends a new message"),
  dedupMode: Options.choice("dedup-mode", ["ignore", "replace", "debounce"]).pipe(
    Options.withDescription(
      "With a held key: ignore (default), replace the queued message, or debounce (replace and push back by --delay)."
    ),
    Options.optional
  ),
  create: Options.boolean("create").pipe(
    Options.withDescription("Create the queue first if it does not exist.")
  )
}
/** `keel queue send`'s parsed input. */
export type SendInput = Command.Command.ParseConfig<typeof sendConfig>

/** `keel queue send`. */
export const send = Command.make("send", sendConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.send(input))
).pipe(Command.withDescription("Send one JSON message; prints its id."))

const sendBatchConfig = {
  globals: Globals.options,
  queue,
  file: Options.text("file").pipe(
    Options.withAlias("f"),
    Options.withDescription("JSON-lines file to read (default, or '-': stdin)."),
    Options.optional
  ),
  envelopes: Options.boolean("envelopes").pipe(
    Options.withDescription(
      'Each line is {"payload": …, "delay": ms, "priority": n, "dedupKey": "…", "dedupWindow": ms, "dedupMode": "…", "maxDeliveries": n, "backoff": {…}}.'
    )
  ),
  ...sendOptions,
  create: Options.boolean("create").pipe(
    Options.withDescription("Create the queue first if it does not exist.")
  )
}
/** `keel queue send-batch`'s parsed input. */
export type SendBatchInput = Command.Command.ParseConfig<typeof sendBatchConfig>

/** `keel queue send-batch`. */
export const sendBatch = Command.make("send-batch", sendBatchConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.sendBatch(input))
).pipe(
  Command.withDescription(
    "Send one message per JSON line (file or stdin), all in one transaction; prints the ids."
  )
)

const readConfig = {
  globals: Globals.options,
  queue,
  qty: Options.integer("qty").pipe(
    Options.withAlias("n"),
    Options.withDescription("At most this many messages, 1-10000 (default 1)."),
    Options.optional
  ),
  visibilityTimeout: duration("visibility-timeout", "Lease length (default: the queue's)"),
  workerId: Options.text("worker-id").pipe(
    Options.withDescription("Record this consumer on the leases."),
    Options.optional
  )
}
/** `keel queue read`'s parsed input. */
export type ReadInput = Command.Command.ParseConfig<typeof readConfig>

/** `keel queue read`. */
export const read = Command.make("read", readConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.read(input))
).pipe(
  Command.withDescription("Lease visible messages; prints id, lease token, deliveries and payload of each.")
)

const ackConfig = { globals: Globals.options, queue, id: messageId, lease }
/** The parsed input of `delete` and `archive`. */
export type AckInput = Command.Command.ParseConfig<typeof ackConfig>

/** `keel queue delete`. */
export const remove = Command.make("delete", ackConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.remove(input))
).pipe(Command.withDescription("Delete a message you lease (exit 1 if the lease was lost)."))

/** `keel queue archive`. */
export const archive = Command.make("archive", ackConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.archive(input))
).pipe(Command.withDescription("Archive a message you lease (exit 1 if the lease was lost)."))

const releaseConfig = {
  ...ackConfig,
  delay: duration("delay", "Invisible for this long before it can be read again"),
  error: Options.text("error").pipe(
    Options.withDescription("Why the delivery failed (dead-letters it when out of deliveries)."),
    Options.optional
  )
}
/** `keel queue release`'s parsed input. */
export type ReleaseInput = Command.Command.ParseConfig<typeof releaseConfig>

/** `keel queue release`. */
export const release = Command.make("release", releaseConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.release(input))
).pipe(Command.withDescription("Give a leased message back to the queue (or the dead letters)."))

const showConfig = { globals: Globals.options, queue, id: messageId }
/** `keel queue show`'s parsed input. */
export type ShowInput = Command.Command.ParseConfig<typeof showConfig>

/** `keel queue show`. */
export const show = Command.make("show", showConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.show(input))
).pipe(
  Command.withDescription(
    "A message as it is now: queued, delayed or leased, its deliveries and the progress its handler reported."
  )
)

const progressConfig = {
  ...ackConfig,
  progress: Args.text({ name: "progress" }).pipe(
    Args.withDescription("The progress: JSON text, up to 4 KiB.")
  )
}
/** `keel queue progress`'s parsed input. */
export type ProgressInput = Command.Command.ParseConfig<typeof progressConfig>

/** `keel queue progress`. */
export const progress = Command.make("progress", progressConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.progress(input))
).pipe(
  Command.withDescription(
    "Report the progress of a message you lease (in `queue consume`: $KEEL_QUEUE $KEEL_MESSAGE_ID $KEEL_LEASE)."
  )
)

const cancelConfig = { globals: Globals.options, queue, id: messageId }
/** `keel queue cancel`'s parsed input. */
export type CancelInput = Command.Command.ParseConfig<typeof cancelConfig>

/** `keel queue cancel`. */
export const cancel = Command.make("cancel", cancelConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.cancel(input))
).pipe(
  Command.withDescription(
    "Cancel a message by id, queued or leased: archived as cancelled, never delivered again; a running handler is interrupted (exit 1 if it is not in the queue)."
  )
)

const updateConfig = {
  globals: Globals.options,
  queue,
  id: messageId,
  delay: duration("delay", "Visible this long from now"),
  priority: Options.integer("priority").pipe(
    Options.withDescription("Lower is delivered first, -32768 to 32767."),
    Options.optional
  )
}
/** `keel queue update`'s parsed input. */
export type UpdateInput = Command.Command.ParseConfig<typeof updateConfig>

/** `keel queue update`. */
export const update = Command.make("update", updateConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.update(input))
).pipe(
  Command.withDescription("Change a queued message's availability or priority (exit 1 while it is leased).")
)

const extendConfig = {
  ...ackConfig,
  visibilityTimeout: duration(
    "visibility-timeout",
    "The lease lasts this long from now (default: the queue's)"
  )
}
/** `keel queue extend`'s parsed input. */
export type ExtendInput = Command.Command.ParseConfig<typeof extendConfig>

/** `keel queue extend`. */
export const extend = Command.make("extend", extendConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.extend(input))
).pipe(Command.withDescription("Extend a lease; prints the new deadline."))

const deadListConfig = {
  globals: Globals.options,
  queue,
  limit: Options.integer("limit").pipe(
    Options.withDescription("At most this many, newest first (default 100)."),
    Options.optional
  ),
  before: Options.integer("before").pipe(
    Options.withDescription("Only ids below this one."),
    Options.optional
  )
}
/** `keel queue dead list`'s parsed input. */
export type DeadListInput = Command.Command.ParseConfig<typeof deadListConfig>

const deadRequeueConfig = {
  globals: Globals.options,
  queue,
  ids: Args.integer({ name: "id" }).pipe(
    Args.withDescription("Dead letters to requeue (default: the oldest --limit)."),
    Args.repeated
  ),
  limit: Options.integer("limit").pipe(
    Options.withDescription("At most this many when no ids are given (default 10000)."),
    Options.optional
  )
}
/** `keel queue dead requeue`'s parsed input. */
export type DeadRequeueInput = Command.Command.ParseConfig<typeof deadRequeueConfig>

/** `keel queue dead list | requeue`. */
export const dead = Command.make("dead").pipe(
  Command.withDescription("Dead letters: messages that ran out of deliveries."),
  Command.withSubcommands([
    Command.make("list", deadListConfig, (input) =>
      Leaf.lazy(input.globals, handlers, (run) => run.deadList(input))
    ).pipe(Command.withDescription("List dead letters, newest first.")),
    Command.make("requeue", deadRequeueConfig, (input) =>
      Leaf.lazy(input.globals, handlers, (run) => run.deadRequeue(input))
    ).pipe(Command.withDescription("Move dead letters back into the queue; prints the ids moved."))
  ])
)

const purgeConfig = {
  globals: Globals.options,
  queue,
  archive: Options.boolean("archive").pipe(
    Options.withDescription("Also delete archived messages and dead letters.")
  )
}
/** `keel queue purge`'s parsed input. */
export type PurgeInput = Command.Command.ParseConfig<typeof purgeConfig>

/** `keel queue purge`. */
export const purge = Command.make("purge", purgeConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.purge(input))
).pipe(Command.withDescription("Delete every message of a queue (leased ones too)."))

const dropConfig = {
  globals: Globals.options,
  queue,
  force: Options.boolean("force").pipe(
    Options.withDescription("Delete even while messages are leased (their acknowledgements then fail).")
  )
}
/** `keel queue drop`'s parsed input. */
export type DropInput = Command.Command.ParseConfig<typeof dropConfig>

/** `keel queue drop`. */
export const drop = Command.make("drop", dropConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.drop(input))
).pipe(
  Command.withDescription("Delete a queue with its messages; refused (exit 1) while messages are in flight.")
)

const metricsConfig = {
  globals: Globals.options,
  queue: Args.text({ name: "queue" }).pipe(Args.withDescription("One queue (default: all)."), Args.optional)
}
/** `keel queue metrics`'s parsed input. */
export type MetricsInput = Command.Command.ParseConfig<typeof metricsConfig>

/** `keel queue metrics`. */
export const metrics = Command.make("metrics", metricsConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.metrics(input))
).pipe(Command.withDescription("Counts now: depth, in flight, delayed, oldest age, archived, dead."))

const workersConfig = {
  globals: Globals.options,
  queue: Args.text({ name: "queue" }).pipe(Args.withDescription("One queue (default: all)."), Args.optional)
}
/** `keel queue workers`'s parsed input. */
export type WorkersInput = Command.Command.ParseConfig<typeof workersConfig>

/** `keel queue workers`. */
export const workers = Command.make("workers", workersConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.workers(input))
).pipe(Command.withDescription("Registered workers (consumers) and their last heartbeat."))

const consumeConfig = {
  globals: Globals.options,
  queue,
  command: Args.text({ name: "command" }).pipe(
    Args.withDescription(
      "Shell command run per message (sh -c): payload JSON on stdin; KEEL_QUEUE, KEEL_MESSAGE_ID, " +
        "KEEL_LEASE, KEEL_DELIVERIES, KEEL_PRIORITY, KEEL_ENQUEUED_AT, KEEL_WORKER_ID in the environment."
    )
  ),
  concurrency: Options.integer("concurrency").pipe(
    Options.withAlias("c"),
    Options.withDescription("Commands running at once, 1-1000 (default 1)."),
    Options.optional
  ),
  visibilityTimeout: duration("visibility-timeout", "Lease length, extended while a command runs"),
  pollInterval: duration("poll-interval", "Longest wait between reads (default 1s)"),
  workerId: Options.text("worker-id").pipe(
    Options.withDescription("A stable worker id (default: random)."),
    Options.optional
  ),
  shutdownTimeout: duration(
    "shutdown-timeout",
    "On SIGINT/SIGTERM, how long running commands may finish (default 30s)"
  ),
  timeout: duration("timeout", "Kill a command running longer and release its message"),
  backoff: duration("backoff", "First retry delay of a failed message, doubling per delivery (default 1s)"),
  onSuccess: Options.choice("on-success", ["archive", "delete"]).pipe(
    Options.withDescription("What happens to a message whose command exited 0 (default archive)."),
    Options.optional
  ),
  maxMessages: Options.integer("max-messages").pipe(
    Options.withDescription("Stop after this many deliveries have been settled (in-flight ones finish)."),
    Options.optional
  )
}
/** `keel queue consume`'s parsed input. */
export type ConsumeInput = Command.Command.ParseConfig<typeof consumeConfig>

/** `keel queue consume`. */
export const consume = Command.make("consume", consumeConfig, (input) =>
  Leaf.lazy(
    input.globals,
    () => import("../handlers/Consume.js"),
    (run) => run.consume(input)
  )
).pipe(
  Command.withDescription(
    "Run a shell command per message: exit 0 archives it, failure releases it with backoff. " +
      "SIGINT/SIGTERM stops gracefully: running commands finish, leases are released, the worker deregisters."
  )
)

/** `keel queue`. */
export const queueCommand = Command.make("queue").pipe(
  Command.withDescription("Durable queues: send, lease, acknowledge, dead letters, consumers."),
  Command.withSubcommands([
    create,
    configure,
    list,
    info,
    send,
    sendBatch,
    read,
    remove,
    archive,
    release,
    extend,
    cancel,
    update,
    show,
    progress,
    dead,
    purge,
    drop,
    metrics,
    workers,
    events,
    consume
  ])
)
