/**
 * `keel` run inside the test process (`Program.run`, what the binary runs, without the process
 * around it): stdout and stderr captured through `Output.Streams`, stdin fed through `Input.Stdin`.
 * A run costs milliseconds instead of the ~0.3 s of a child process, so property tests can afford
 * hundreds. Runs must not overlap: the exit code passes through `process.exitCode`.
 */
import { Duration, Effect, Fiber, Option } from "effect"
import * as Input from "../../src/Input.js"
import * as Output from "../../src/Output.js"
import * as Program from "../../src/Program.js"
import type { Result } from "./Keel.js"

/** What to run. */
export interface Invocation {
  readonly args: ReadonlyArray<string>
  /** Standard input (decoded as UTF-8, as `node:stream/consumers` `text` does); default: empty. */
  readonly stdin?: string | Uint8Array | undefined
  /** Whether stdin is a terminal (then nothing is read from it); default false, as in a script. */
  readonly terminal?: boolean | undefined
  /** Whether stdout is a terminal (then help keeps its colours); default false, as in a pipe. */
  readonly stdoutTerminal?: boolean | undefined
  /** A run still going after this long is interrupted (as by SIGINT/SIGTERM); default 10 s. */
  readonly timeout?: Duration.DurationInput | undefined
  /**
   * Environment variables for this run only, as a child's environment (`KEEL_DB`…): set in
   * `process.env` while it runs and restored after (one more reason runs must not overlap).
   */
  readonly env?: Readonly<Record<string, string>> | undefined
}

/** How an in-process run ended; `interrupted` when it was still running at its timeout. */
export interface InProcessResult extends Result {
  readonly interrupted: boolean
  readonly ms: number
}

const decoder = new TextDecoder()

/** Runs one invocation to its exit code, capturing what it prints. */
export const run = async (invocation: Invocation): Promise<InProcessResult> => {
  const env = invocation.env ?? {}
  const saved = Object.keys(env).map((key) => [key, process.env[key]] as const)
  Object.assign(process.env, env)
  try {
    return await runWithEnv(invocation)
  } finally {
    for (const [key, value] of saved) {
      if (value === undefined) delete process.env[key]
      else process.env[key] = value
    }
  }
}

const runWithEnv = (invocation: Invocation): Promise<InProcessResult> => {
  let stdout = ""
  let stderr = ""
  const streams: Output.Writers = {
    stdout: (text) => {
      stdout += text
    },
    stderr: (text) => {
      stderr += text
    },
    stdoutIsTerminal: () => invocation.stdoutTerminal === true
  }
  const input = invocation.stdin
  const stdin: Input.Source = {
    isTerminal: () => invocation.terminal === true,
    text: () => Promise.resolve(typeof input === "string" ? input : decoder.decode(input ?? new Uint8Array()))
  }
  const capture = (...parts: ReadonlyArray<unknown>) =>
    Effect.sync(() => {
      stdout += `${parts.map(String).join(" ")}\n`
    })
  const program = Effect.gen(function* () {
    const started = Date.now()
    const console = yield* Effect.console
    const fiber = yield* Effect.fork(
      Program.run(["node", "keel", ...invocation.args]).pipe(
        Effect.provideService(Output.Streams, streams),
        Effect.provideService(Input.Stdin, stdin),
        // @effect/cli prints help, versions and completions with Console.log.
        Effect.withConsole({ ...console, log: capture, info: capture })
      )
    )
    const ended = yield* Effect.timeout(Fiber.join(fiber), invocation.timeout ?? Duration.seconds(10)).pipe(
      Effect.option
    )
    if (Option.isNone(ended)) yield* Fiber.interrupt(fiber)
    const code = typeof process.exitCode === "number" ? process.exitCode : null
    process.exitCode = undefined
    return { code, signal: null, stdout, stderr, interrupted: Option.isNone(ended), ms: Date.now() - started }
  })
  return Effect.runPromise(program)
}
