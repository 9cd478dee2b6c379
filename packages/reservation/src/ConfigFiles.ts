/**
 * Writing trop-style config files: a starter `trop.yaml`, and `excluded_ports` edited in place
 * (`exclude`, `compact-exclusions`, `scan --autoexclude`) with the rest of the file — comments
 * included — kept as it was. Every edit validates the file first and the result after: a file
 * that does not validate is `InvalidConfig` and is not written.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import type * as Port from "./Port.js"
import * as ProjectConfig from "./ProjectConfig.js"
import { InvalidConfig } from "./ReservationError.js"

/** Ranges merged: overlapping and adjacent ones become one; sorted. */
export const compact = (ranges: ReadonlyArray<{ readonly min: number; readonly max: number }>) => {
  const sorted = [...ranges].sort((a, b) => a.min - b.min || a.max - b.max)
  const out: Array<{ min: number; max: number }> = []
  for (const range of sorted) {
    const last = out[out.length - 1]
    if (last !== undefined && range.min <= last.max + 1) last.max = Math.max(last.max, range.max)
    else out.push({ min: range.min, max: range.max })
  }
  return out
}

/** An exclusion as trop writes it: a port, or `"min..max"`. */
const written = (range: { readonly min: number; readonly max: number }): number | string =>
  range.min === range.max ? range.min : `${range.min}..${range.max}`

/** The text of a starter `trop.yaml` for `project`. */
export const starter = (project: string): string =>
  [
    "# Port reservations for this project (keel port autoreserve).",
    `project: ${JSON.stringify(project)}`,
    "ports:",
    "  min: 5000",
    "  max: 7000",
    "excluded_ports: []",
    "reservations:",
    "  services:",
    "    web:",
    "      env: WEB_PORT",
    ""
  ].join("\n")

/**
 * Replaces `excluded_ports` of `file` (created when missing) with `edit` of the current ones;
 * returns the new list. Nothing is written when the file or the result does not validate.
 */
export const editExclusions = (
  file: string,
  edit: (
    current: ReadonlyArray<Port.PortRange>
  ) => ReadonlyArray<{ readonly min: number; readonly max: number }>
): Effect.Effect<
  ReadonlyArray<{ readonly min: number; readonly max: number }>,
  InvalidConfig,
  FileSystem.FileSystem
> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const exists = yield* Effect.orElseSucceed(fs.exists(file), () => false)
    const text = exists
      ? yield* Effect.mapError(
          fs.readFileString(file),
          (error) => new InvalidConfig({ source: file, field: "(file)", reason: error.message })
        )
      : ""
    const current = yield* ProjectConfig.parse(text, file)
    const next = edit(yield* ProjectConfig.exclusionsOf(current, file))
    const { parseDocument } = yield* ProjectConfig.yaml
    const document = parseDocument(text)
    document.set("excluded_ports", next.map(written))
    const out = document.toString()
    yield* ProjectConfig.parse(out, file)
    yield* Effect.mapError(
      fs.writeFileString(file, out),
      (error) => new InvalidConfig({ source: file, field: "(file)", reason: error.message })
    )
    return next
  })
