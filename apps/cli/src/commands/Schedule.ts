/**
 * `keel schedule …`: messages a queue receives on a clock (cron or interval), each tick exactly
 * once across processes; `run` is the scheduler. The programs live in `handlers/Schedule.ts`,
 * loaded on demand.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Globals from "../Globals.js"
import * as Leaf from "../Leaf.js"

const handlers = () => import("../handlers/Schedule.js")

const name = Args.text({ name: "name" }).pipe(
  Args.withDescription("The schedule's name (a-z, 0-9, _ and -).")
)

const durationOption = (option: string, description: string) =>
  Options.text(option).pipe(
    Options.withDescription(`${description} (30s, 5m, 2h, 7d, '90 seconds', or milliseconds).`),
    Options.optional
  )

const createConfig = {
  globals: Globals.options,
  name,
  queue: Args.text({ name: "queue" }).pipe(Args.withDescription("The queue each tick's message goes to.")),
  cron: Options.text("cron").pipe(
    Options.withDescription("Cron expression, 5 fields or 6 with seconds first ('0 */5 * * * *')."),
    Options.optional
  ),
  timeZone: Options.text("time-zone").pipe(
    Options.withDescription("IANA time zone of --cron (Europe/Paris; default UTC)."),
    Options.optional
  ),
  every: durationOption("every", "A fixed interval instead of --cron, at least 1s"),
  payload: Options.text("payload").pipe(
    Options.withDescription("The JSON payload of each tick's message (default null)."),
    Options.optional
  ),
  priority: Options.integer("priority").pipe(
    Options.withDescription("Priority of each tick's message, lower first (default 0)."),
    Options.optional
  ),
  backfill: durationOption(
    "backfill",
    "Enqueue ticks missed within this window (default: only the latest, if under a minute old)"
  )
}
/** `keel schedule create`'s parsed input. */
export type CreateInput = Command.Command.ParseConfig<typeof createConfig>

/** `keel schedule create`. */
export const create = Command.make("create", createConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.create(input))
).pipe(Command.withDescription("Create a schedule: --cron or --every, and the queue it sends to."))

const listConfig = {
  globals: Globals.options,
  queue: Options.text("queue").pipe(Options.withDescription("Only this queue's schedules."), Options.optional)
}
/** `keel schedule list`'s parsed input. */
export type ListInput = Command.Command.ParseConfig<typeof listConfig>

/** `keel schedule list`. */
export const list = Command.make("list", listConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.list(input))
).pipe(Command.withDescription("List schedules with their next tick."))

const nameConfig = { globals: Globals.options, name }
/** The parsed input of the commands that name one schedule. */
export type NameInput = Command.Command.ParseConfig<typeof nameConfig>

/** `keel schedule pause`. */
export const pause = Command.make("pause", nameConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.pause(input))
).pipe(Command.withDescription("Stop a schedule; its ticks until resume are skipped."))

/** `keel schedule resume`. */
export const resume = Command.make("resume", nameConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.resume(input))
).pipe(Command.withDescription("Start a paused schedule again, from its next tick."))

/** `keel schedule delete`. */
export const remove = Command.make("delete", nameConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.remove(input))
).pipe(Command.withDescription("Delete a schedule (messages it already sent stay)."))

const runConfig = {
  globals: Globals.options,
  pollInterval: durationOption("poll-interval", "Longest wait between checks for due ticks (default 1s)")
}
/** `keel schedule run`'s parsed input. */
export type RunInput = Command.Command.ParseConfig<typeof runConfig>

/** `keel schedule run`. */
export const run = Command.make("run", runConfig, (input) =>
  Leaf.lazy(input.globals, handlers, (program) => program.run(input))
).pipe(
  Command.withDescription(
    "Run the scheduler until SIGINT/SIGTERM: enqueue each due tick once (any number may run at once)."
  )
)

/** `keel schedule`. */
export const schedule = Command.make("schedule").pipe(
  Command.withDescription("Recurring messages: cron or interval schedules, each tick enqueued exactly once."),
  Command.withSubcommands([create, list, pause, resume, remove, run])
)
