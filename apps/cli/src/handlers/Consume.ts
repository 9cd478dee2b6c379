/**
 * `keel queue consume QUEUE COMMAND` (loaded on demand): a registered worker that runs a shell
 * command per message through the queue's `consume` runner.
 *
 * - The command runs as `sh -c COMMAND` with the payload's JSON text (and a newline) on stdin and
 *   the message in its environment (`KEEL_QUEUE`, `KEEL_MESSAGE_ID`, `KEEL_LEASE`,
 *   `KEEL_DELIVERIES`, `KEEL_PRIORITY`, `KEEL_ENQUEUED_AT`, `KEEL_WORKER_ID`, and `TRACEPARENT`
 *   when the message carries a trace). Its stdout is keel's stdout (stderr with `--json`, which
 *   keeps stdout for keel's document); its stderr is keel's stderr.
 * - Exit 0 archives the message (or deletes it, `--on-success delete`); any other exit, a signal
 *   or `--timeout` releases it with exponential backoff, and the queue dead-letters it once it
 *   has had its max deliveries. The lease is extended while the command runs.
 * - SIGINT/SIGTERM stop it gracefully: no new reads, running commands get `--shutdown-timeout` to
 *   finish (they run in their own process group, so a Ctrl-C at the terminal does not reach
 *   them), then are killed and their messages released; the worker deregisters and keel exits 0.
 */
import { spawn } from "node:child_process"
import type { Consumer, Schemas } from "@keel/queue"
import * as Queue from "@keel/queue/Queue"
import * as Telemetry from "@keel/sql/Telemetry"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import type { ConsumeInput } from "../commands/Queue.js"
import { InvalidInput } from "../Failure.js"
import { Globals } from "../Globals.js"
import * as Layers from "../Layers.js"
import * as Output from "../Output.js"
import * as Parse from "../Parse.js"
import { Shutdown } from "../Shutdown.js"
import * as Tracing from "../Tracing.js"

/** The command did not exit 0. */
export class CommandFailed extends Data.TaggedError("CommandFailed")<{ readonly reason: string }> {
  override get message(): string {
    return this.reason
  }
}

/** How long running commands may take to finish after SIGINT/SIGTERM, unless `--shutdown-timeout`. */
export const defaultShutdownTimeout = Duration.seconds(30)

/** How long a command killed at shutdown (or timeout) gets between SIGTERM and SIGKILL. */
const killGrace = Duration.seconds(5)

/**
 * The environment a command runs with: keel's, plus the message, plus `TRACEPARENT` when there is
 * a trace to continue — the handler's span (`keel.queue.handle`) with tracing on, else the trace
 * the message was sent in; with neither, keel's own `TRACEPARENT` (if any) passes through.
 */
export const environment = (
  message: Schemas.Leased,
  workerId: string,
  traceparent: string | undefined = undefined
): Record<string, string> => {
  const trace = traceparent ?? message.trace ?? undefined
  return {
    KEEL_QUEUE: message.queue,
    KEEL_MESSAGE_ID: String(message.id),
    KEEL_LEASE: message.lease,
    KEEL_DELIVERIES: String(message.deliveries),
    KEEL_PRIORITY: String(message.priority),
    KEEL_ENQUEUED_AT: String(message.enqueuedAt.epochMillis),
    KEEL_WORKER_ID: workerId,
    ...(trace === undefined ? {} : { TRACEPARENT: trace })
  }
}

const signalGroup = (pid: number | undefined, signal: NodeJS.Signals) => {
  if (pid === undefined) return
  try {
    process.kill(-pid, signal)
  } catch {
    // the group is gone already
  }
}

/**
 * Runs `command` for one message. Interrupting it (shutdown past its grace, `--timeout`) sends
 * SIGTERM to the command's process group, then SIGKILL after 5 s, and waits for it to end.
 */
export const runCommand = (
  command: string,
  message: Schemas.Leased,
  workerId: string,
  stdout: number,
  traceparent: string | undefined = undefined
): Effect.Effect<void, CommandFailed> =>
  Effect.async<void, CommandFailed>((resume) => {
    const child = spawn("/bin/sh", ["-c", command], {
      detached: true,
      stdio: ["pipe", stdout, "inherit"],
      env: { ...process.env, ...environment(message, workerId, traceparent) }
    })
    let ended = false
    const closed = new Promise<void>((done) => {
      child.once("close", (code, signal) => {
        ended = true
        done()
        if (code === 0) resume(Effect.void)
        else
          resume(
            Effect.fail(
              new CommandFailed({
                reason: signal === null ? `command exited with code ${code}` : `command killed by ${signal}`
              })
            )
          )
      })
    })
    child.once("error", (error) => {
      ended = true
      resume(Effect.fail(new CommandFailed({ reason: `command could not start: ${error.message}` })))
    })
    // A command that does not read its stdin closes the pipe early: that is not a failure.
    child.stdin?.on("error", () => undefined)
    child.stdin?.end(`${JSON.stringify(message.payload)}\n`)
    return Effect.promise(async () => {
      if (ended) return
      signalGroup(child.pid, "SIGTERM")
      const timer = setTimeout(() => signalGroup(child.pid, "SIGKILL"), Duration.toMillis(killGrace))
      await closed
      clearTimeout(timer)
    })
  })

const describeEvent = (event: Consumer.ConsumerEvent): string | undefined => {
  const id = event.message.id
  switch (event._tag) {
    case "Leased":
    case "Extended":
      return undefined
    case "Acknowledged":
      return `message ${id}: done, ${event.action === "archive" ? "archived" : "deleted"}`
    case "Failed":
      return event.outcome === "dead"
        ? `message ${id}: ${event.error}; dead-lettered after ${event.message.deliveries} deliveries`
        : `message ${id}: ${event.error}; released, retry in ${Duration.format(Duration.millis(event.delay))}`
    case "Released":
      return `message ${id}: stopped by shutdown; released`
    case "LeaseLost":
      return `message ${id}: lease lost; not acknowledged`
  }
}

/** `keel queue consume`. */
export const consume = (input: ConsumeInput) =>
  Effect.provide(
    Effect.gen(function* () {
      const globals = yield* Globals
      const queues = yield* Queue.Queues
      const limit = Option.getOrUndefined(input.maxMessages)
      if (limit !== undefined && limit < 1) {
        return yield* new InvalidInput({
          source: "--max-messages",
          reason: `${limit} is not a positive integer`
        })
      }
      const visibilityTimeout = yield* Parse.optionalDuration("visibility-timeout", input.visibilityTimeout)
      const pollInterval = yield* Parse.optionalDuration("poll-interval", input.pollInterval)
      const shutdownTimeout = yield* Parse.optionalDuration("shutdown-timeout", input.shutdownTimeout)
      const handlerTimeout = yield* Parse.optionalDuration("timeout", input.timeout)
      const backoff = yield* Parse.optionalDuration("backoff", input.backoff)
      const settled = yield* Ref.make(0)
      const enough = yield* Deferred.make<void>()
      const stats = yield* Ref.make<Effect.Effect<Consumer.ConsumerStats> | undefined>(undefined)
      const workerId = yield* Ref.make("")
      const stdout = globals.json ? 2 : 1

      const onEvent = (event: Consumer.ConsumerEvent): Effect.Effect<void> =>
        Effect.gen(function* () {
          const line = describeEvent(event)
          if (line === undefined) return
          yield* Effect.provideService(Output.note(line), Globals, globals)
          const count = yield* Ref.updateAndGet(settled, (n) => n + 1)
          if (limit !== undefined && count >= limit) yield* Deferred.succeed(enough, undefined)
        })

      const running = Effect.scoped(
        Effect.gen(function* () {
          const consumer = yield* queues.consume(
            input.queue,
            (message) =>
              Effect.zipWith(Ref.get(workerId), Telemetry.traceparent, (id, traceparent) =>
                runCommand(input.command, message, id, stdout, traceparent)
              ).pipe(Effect.flatten),
            {
              concurrency: Option.getOrUndefined(input.concurrency),
              visibilityTimeout,
              pollInterval,
              workerId: Option.getOrUndefined(input.workerId),
              shutdownTimeout: shutdownTimeout ?? Duration.toMillis(defaultShutdownTimeout),
              handlerTimeout,
              backoff: { initial: backoff },
              onSuccess: Option.getOrUndefined(input.onSuccess),
              onEvent
            }
          )
          yield* Ref.set(workerId, consumer.workerId)
          yield* Ref.set(stats, consumer.stats)
          yield* Output.note(
            `consuming ${input.queue} as worker ${consumer.workerId}${limit === undefined ? "" : ` (at most ${limit} messages)`}; Ctrl-C stops`
          )
          yield* limit === undefined ? Effect.never : Deferred.await(enough)
        })
      )

      const summary = Effect.gen(function* () {
        const read = yield* Ref.get(stats)
        if (read === undefined) return
        const counts = yield* read
        const id = yield* Ref.get(workerId)
        const document = { queue: input.queue, workerId: id, stats: counts }
        const text = `worker ${id} stopped: ${counts.processed} done, ${counts.failed} failed (${counts.deadLettered} dead-lettered), ${counts.released} released, ${counts.leaseLost} lease(s) lost`
        yield* globals.json ? Output.result(document, () => text) : Output.note(text)
      })

      yield* running.pipe(
        // Each message continues its own trace, not the TRACEPARENT keel was started under.
        Tracing.detached,
        Effect.onExit((exit) =>
          Effect.gen(function* () {
            // An interruption is how SIGINT/SIGTERM arrive; reaching here means the consumer shut
            // down cleanly (commands finished or were released, worker deregistered).
            if (Exit.isInterrupted(exit)) {
              yield* summary
              yield* Effect.flatMap(Shutdown, (clean) => Ref.set(clean, true))
            } else if (Exit.isSuccess(exit)) {
              yield* summary
            }
          })
        )
      )
    }),
    Layers.queue
  )
