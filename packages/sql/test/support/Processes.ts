/**
 * Real child processes for concurrency tests: SQLite file locks only bite across connections,
 * and a SIGKILL only happens to a process.
 *
 * A TypeScript entry point is bundled once per test process (`Bundle.ts`) and children run the
 * bundle with plain node: a child then boots in ~0.2 s instead of ~2 s through tsx, which is what
 * makes tests with dozens of process starts affordable.
 */
import { type ChildProcess, execFile, spawn as spawnChild } from "node:child_process"
import { Deferred, Duration, Effect, type Scope } from "effect"
import * as Bundle from "./Bundle.js"

/**
 * The runnable file for `script`: `.ts` entry points are bundled once per process (see
 * `Bundle.ts`; native drivers stay external), other files run as they are.
 */
export const runnable = (script: string): Promise<string> => Bundle.runnable(script, { externals: "native" })

/** How a child process ended. */
export interface Exited {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/** A running child process. */
export interface Child {
  readonly pid: number
  /** Everything the child wrote to stdout so far. */
  readonly stdout: () => string
  readonly stderr: () => string
  readonly kill: (signal?: NodeJS.Signals) => Effect.Effect<void>
  /** Waits for the child to end. */
  readonly exited: Effect.Effect<Exited>
}

/** What to run. */
export interface Options {
  /** Absolute path of a `.ts` (or `.js`) entry point. */
  readonly script: string
  readonly args?: ReadonlyArray<string>
  readonly env?: Readonly<Record<string, string>>
  readonly cwd?: string
}

/** Starts a child; the scope kills it (SIGKILL) if it is still running. */
export const spawn = (options: Options): Effect.Effect<Child, never, Scope.Scope> =>
  Effect.gen(function* () {
    const done = yield* Deferred.make<Exited>()
    const file = yield* Effect.promise(() => runnable(options.script))
    const child: ChildProcess = yield* Effect.acquireRelease(
      Effect.sync(() => {
        let stdout = ""
        let stderr = ""
        const proc = spawnChild(process.execPath, [file, ...(options.args ?? [])], {
          cwd: options.cwd,
          env: { ...process.env, ...options.env },
          stdio: ["ignore", "pipe", "pipe"]
        })
        proc.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
          stdout += chunk
        })
        proc.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
          stderr += chunk
        })
        proc.on("close", (code, signal) => {
          Deferred.unsafeDone(done, Effect.succeed({ code, signal, stdout, stderr }))
        })
        Object.assign(proc, { readStdout: () => stdout, readStderr: () => stderr })
        return proc
      }),
      (proc) =>
        Effect.gen(function* () {
          if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL")
          yield* Effect.timeout(Deferred.await(done), Duration.seconds(5)).pipe(Effect.ignore)
        })
    )
    const readers = child as ChildProcess & { readStdout: () => string; readStderr: () => string }
    return {
      pid: child.pid ?? -1,
      stdout: () => readers.readStdout(),
      stderr: () => readers.readStderr(),
      kill: (signal = "SIGTERM") => Effect.sync(() => void child.kill(signal)),
      exited: Deferred.await(done)
    }
  })

/** Runs a child to completion. */
export const run = (options: Options): Effect.Effect<Exited> =>
  Effect.scoped(Effect.flatMap(spawn(options), (child) => child.exited))

/** Runs `count` children at once (each told its index in `KEEL_CHILD_INDEX`) and waits for all. */
export const runMany = (
  count: number,
  options: (index: number) => Options
): Effect.Effect<ReadonlyArray<Exited>> =>
  Effect.forEach(
    Array.from({ length: count }, (_, index) => index),
    (index) => {
      const base = options(index)
      return run({ ...base, env: { ...base.env, KEEL_CHILD_INDEX: String(index) } })
    },
    { concurrency: "unbounded" }
  )

/**
 * A start time a little in the future, for children to wait for (`waitForStart`) so that they
 * hit the database at the same instant rather than in the order they finished booting.
 */
export const startAt = (delay: Duration.DurationInput = Duration.seconds(3)): string =>
  String(Date.now() + Duration.toMillis(delay))

/** In a child: sleeps until `KEEL_START_AT` (epoch ms), if set. */
export const waitForStart: Effect.Effect<void> = Effect.suspend(() => {
  const at = Number(process.env.KEEL_START_AT ?? 0)
  const wait = at - Date.now()
  return wait > 0 ? Effect.sleep(Duration.millis(wait)) : Effect.void
})

/** How `exec` runs a command. */
export interface ExecOptions {
  /** How long it may run (default 60 s). */
  readonly timeoutMs?: number
  readonly cwd?: string
  /** Its whole environment (default: this process's). */
  readonly env?: NodeJS.ProcessEnv
}

/**
 * Runs a system command (`mount`, `pg_ctl`, `npm`…) to completion; its stdout. Fails with an error
 * naming the command and carrying what it printed when it exits non-zero or outlives its timeout.
 */
export const exec = (
  file: string,
  args: ReadonlyArray<string>,
  options: ExecOptions = {}
): Effect.Effect<string, Error> =>
  Effect.async<string, Error>((resume) => {
    const { timeoutMs = 60_000, cwd, env } = options
    const child = execFile(
      file,
      [...args],
      { timeout: timeoutMs, cwd, env, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const printed = [stderr, stdout].filter((text) => text.trim() !== "").join("\n")
        if (error) resume(Effect.fail(new Error(`${file} ${args.join(" ")}: ${printed || error.message}`)))
        else resume(Effect.succeed(stdout))
      }
    )
    // Interrupted (a test timed out): the command must not outlive it.
    return Effect.sync(() => void child.kill())
  })
