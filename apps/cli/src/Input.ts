/**
 * Reading what a command consumes: a file, or standard input. A terminal on stdin is refused at
 * once (instead of waiting for typing that never comes) with a hint to pipe or pass a file.
 */
import { readFile } from "node:fs/promises"
import { resolve } from "node:path"
import { text } from "node:stream/consumers"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { InvalidInput } from "./Failure.js"

/** A source of standard input. */
export interface Source {
  /** Whether it is a terminal (someone would have to type the input). */
  readonly isTerminal: () => boolean
  /** All of it, as text. */
  readonly text: () => Promise<string>
}

/**
 * Where commands read standard input from: the process's stdin unless replaced (tests that run
 * `keel` in-process feed it here).
 */
export class Stdin extends Context.Reference<Stdin>()("@keel/cli/Input/Stdin", {
  defaultValue: (): Source => ({
    isTerminal: () => process.stdin.isTTY === true,
    text: () => text(process.stdin)
  })
}) {}

/** The whole of standard input as text; `InvalidInput` when stdin is a terminal. */
export const stdin = (what: string): Effect.Effect<string, InvalidInput> =>
  Effect.flatMap(Stdin, (source) =>
    source.isTerminal()
      ? Effect.fail(new InvalidInput({ source: "stdin", reason: `is a terminal; pipe ${what} into keel` }))
      : Effect.tryPromise({
          try: () => source.text(),
          catch: (error) =>
            new InvalidInput({
              source: "stdin",
              reason: error instanceof Error ? error.message : String(error)
            })
        })
  )

/** The text of `file` (relative to the working directory), or stdin when it is absent or `-`. */
export const fileOrStdin = (file: Option.Option<string>, what: string): Effect.Effect<string, InvalidInput> =>
  Option.match(
    Option.filter(file, (name) => name !== "-"),
    {
      onNone: () => stdin(what),
      onSome: (name) =>
        Effect.tryPromise({
          try: () => readFile(resolve(process.cwd(), name), "utf8"),
          catch: (error) =>
            new InvalidInput({
              source: name,
              reason: error instanceof Error ? error.message.replace(/^[A-Z]+: /, "") : String(error)
            })
        })
    }
  )
