/**
 * What commands print. A command's result goes to stdout: with `--json` exactly one JSON document
 * (one line), otherwise human text. Progress and confirmations go to stderr and `--quiet` drops
 * them, so stdout carries only the result (`PORT=$(keel port reserve)` captures the port alone).
 */
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as ErrorLine from "./ErrorLine.js"
import { Globals } from "./GlobalOptions.js"

/** Where keel's text goes: a writer per stream. */
export interface Writers {
  readonly stdout: (text: string) => void
  readonly stderr: (text: string) => void
  /** Whether stdout is a terminal (help and usage are coloured only there). */
  readonly stdoutIsTerminal: () => boolean
}

/**
 * The streams commands write to: the process's stdout and stderr unless replaced (tests that run
 * `keel` in-process capture them here). Commands' own child processes still inherit the process's.
 */
export class Streams extends Context.Reference<Streams>()("@keel/cli/Output/Streams", {
  defaultValue: (): Writers => ({
    stdout: (text) => {
      process.stdout.write(text)
    },
    stderr: (text) => {
      process.stderr.write(text)
    },
    stdoutIsTerminal: () => process.stdout.isTTY === true
  })
}) {}

/**
 * Whether text for stdout may carry ANSI colour: only when stdout is a terminal and `NO_COLOR` is
 * unset or empty (https://no-color.org). A pipe, a file or a CI log gets plain text.
 */
export const colour: Effect.Effect<boolean> = Effect.gen(function* () {
  const streams = yield* Streams
  const noColour = yield* Effect.orElseSucceed(Config.option(Config.string("NO_COLOR")), () => Option.none())
  return streams.stdoutIsTerminal() && Option.getOrElse(noColour, () => "") === ""
})

/** `text` without ANSI escape sequences (colours, bold). */
export const plain = ErrorLine.plain

const write = (stream: keyof Writers, text: string): Effect.Effect<void> =>
  Effect.flatMap(Streams, (streams) => Effect.sync(() => streams[stream](text)))

const jsonReplacer = (_key: string, value: unknown): unknown =>
  typeof value === "bigint" ? value.toString() : value

/** `value` as one line of JSON. */
export const json = (value: unknown): string => JSON.stringify(value, jsonReplacer)

/**
 * Prints the command's result: `document` as JSON with `--json`, else `human()` (nothing when it is
 * empty). A result is printed even with `--quiet`: it is what the command was asked for.
 */
export const result = (document: unknown, human: () => string): Effect.Effect<void, never, Globals> =>
  Effect.flatMap(Globals, (globals) => {
    if (globals.json) return write("stdout", `${json(document)}\n`)
    const text = human()
    return text === "" ? Effect.void : write("stdout", text.endsWith("\n") ? text : `${text}\n`)
  })

/**
 * Prints a confirmation of a change (`created queue jobs`): with `--json` the document, with
 * `--quiet` nothing, else the human text on stdout.
 */
export const confirmation = (document: unknown, human: () => string): Effect.Effect<void, never, Globals> =>
  Effect.flatMap(Globals, (globals) =>
    globals.quiet && !globals.json ? Effect.void : result(document, human)
  )

/** A progress line on stderr (dropped with `--quiet`). */
export const note = (line: string): Effect.Effect<void, never, Globals> =>
  Effect.flatMap(Globals, (globals) => (globals.quiet ? Effect.void : write("stderr", `${line}\n`)))

/** Writes raw text to stderr (failures, already rendered). */
export const stderr = (text: string): Effect.Effect<void> => write("stderr", text)

/**
 * A plain-text table: one header line and one line per row, columns padded to their widest
 * cell, the last column unpadded. Cells are made single-line so no value can forge a row.
 */
export const table = (headers: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const cells = [headers, ...rows].map((row) => row.map(singleLine))
  const widths = headers.map((_, column) => Math.max(...cells.map((row) => (row[column] ?? "").length)))
  return cells
    .map((row) =>
      row
        .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
        .join("  ")
        .trimEnd()
    )
    .join("\n")
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: escaping control characters is the point
const control = /[\u0000-\u001f\u007f\u2028\u2029]/g

/** Control characters shown as `\uXXXX`, so a value never breaks a line of output. */
export const singleLine = (text: string): string =>
  text.replace(control, (character) => `\\u${character.charCodeAt(0).toString(16).padStart(4, "0")}`)

/** `-` for an absent value. */
export const orDash = (value: string | number | null | undefined): string =>
  value === null || value === undefined || value === "" ? "-" : String(value)
