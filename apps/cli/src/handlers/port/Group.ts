/**
 * A reserved group as the shell, a dotenv file, JSON or a person reads it. Each service's port is
 * exported under its variable (`env` in trop.yaml, else the tag in capitals); the project
 * directory as `KEEL_PORTS_PATH`. Every value is quoted (`Formats`), so nothing in a path can run
 * when the output is `eval`ed.
 */
import type { Schemas } from "@keel/reservation"
import type { Effect } from "effect"
import type { Globals } from "../../GlobalOptions.js"
import * as Output from "../../Output.js"
import * as Formats from "./Formats.js"

/** The variable the project directory is exported as. */
export const pathVariable = "KEEL_PORTS_PATH"

/** One reserved service with its variable. */
export interface Entry {
  readonly reserved: Schemas.Reserved
  readonly env: string | undefined
}

/** How `print` renders. */
export type Format = "export" | "json" | "dotenv" | "human"

/** Prints a group in `format` (`--json` is `json`). */
export const print = (
  format: Format,
  shell: Formats.Shell,
  path: string,
  entries: ReadonlyArray<Entry>,
  dryRun: boolean
): Effect.Effect<void, never, Globals> => {
  const document = {
    path,
    dryRun,
    reservations: entries.map(({ env, reserved }) => ({
      tag: reserved.reservation.tag,
      env: env ?? null,
      port: reserved.reservation.port,
      outcome: reserved.outcome
    }))
  }
  const named = entries.flatMap(({ env, reserved }) =>
    env === undefined ? [] : [[env, String(reserved.reservation.port)] as const]
  )
  const text = (): string => {
    switch (format) {
      case "export":
        return [...named, [pathVariable, path] as const]
          .map(([name, value]) => Formats.exportLine(shell, name, value))
          .join("\n")
      case "dotenv":
        return [...named, [pathVariable, path] as const]
          .map(([name, value]) => Formats.dotenvLine(name, value))
          .join("\n")
      case "json":
        return Output.json(document)
      case "human":
        return entries
          .map(({ reserved }) => `${Output.orDash(reserved.reservation.tag)} ${reserved.reservation.port}`)
          .join("\n")
    }
  }
  return Output.result(document, text)
}
