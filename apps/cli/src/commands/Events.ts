/**
 * `keel queue events`: the queue event log (`Queue.events`), one line per event. The program
 * lives in `handlers/Events.ts`, loaded on demand.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Globals from "../Globals.js"
import * as Leaf from "../Leaf.js"

const eventsConfig = {
  globals: Globals.options,
  queue: Args.text({ name: "queue" }).pipe(Args.withDescription("One queue (default: all)."), Args.optional),
  since: Options.integer("since").pipe(
    Options.withDescription("Only events after this id (default 0: every event still kept)."),
    Options.optional
  ),
  follow: Options.boolean("follow").pipe(
    Options.withAlias("f"),
    Options.withDescription("Keep printing new events until SIGINT/SIGTERM (then exit 0).")
  )
}
/** `keel queue events`'s parsed input. */
export type EventsInput = Command.Command.ParseConfig<typeof eventsConfig>

/** `keel queue events`. */
export const events = Command.make("events", eventsConfig, (input) =>
  Leaf.lazy(
    input.globals,
    () => import("../handlers/Events.js"),
    (run) => run.events(input)
  )
).pipe(
  Command.withDescription(
    "The event log of queues with --events: id, time, queue, message id, type (sent, leased, released, " +
      "acknowledged, deleted, dead, cancelled) and error of each, oldest first; with --json one JSON object per line. " +
      "Prints what is recorded now and exits, or with --follow keeps printing."
  )
)
