/**
 * Path rules. A reservation's path is stored absolute, normalized and with symlinks resolved, so
 * one directory reached through two spellings is one key. Filesystem access goes through
 * `@effect/platform`'s `FileSystem` and `Path`, which keeps this module free of Node specifics and
 * lets tests substitute a filesystem.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Effect from "effect/Effect"
import { InvalidPath, UnrelatedPath } from "../ReservationError.js"
import { ReservationPath } from "../Schemas.js"

/** The longest path accepted, in characters (Linux's PATH_MAX). */
export const maxPathLength = 4096

const checkShape = (field: string, raw: string): Effect.Effect<void, InvalidPath, Path.Path> =>
  Effect.flatMap(Path.Path, (path) => {
    if (raw.length === 0 || raw.length > maxPathLength || raw.includes("\0")) {
      return Effect.fail(
        new InvalidPath({
          field,
          path: raw,
          problem: "malformed",
          detail: `empty, longer than ${maxPathLength} characters, or containing NUL`
        })
      )
    }
    return path.isAbsolute(raw)
      ? Effect.void
      : Effect.fail(new InvalidPath({ field, path: raw, problem: "relative" }))
  })

/**
 * An existing directory, as its real path. Relative, missing and non-directory paths are
 * `InvalidPath`. Used where a reservation is made: reserving for a directory that is not there
 * would be pruned by the next cleanup anyway.
 */
export const existingDirectory = (
  field: string,
  raw: string
): Effect.Effect<ReservationPath, InvalidPath, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function* () {
    yield* checkShape(field, raw)
    const fs = yield* FileSystem.FileSystem
    const real = yield* Effect.mapError(
      fs.realPath(raw),
      (error) =>
        new InvalidPath({
          field,
          path: raw,
          problem: error._tag === "SystemError" && error.reason === "NotFound" ? "missing" : "unreadable",
          detail: error.message
        })
    )
    const info = yield* Effect.mapError(
      fs.stat(real),
      (error) => new InvalidPath({ field, path: raw, problem: "unreadable", detail: error.message })
    )
    if (info.type !== "Directory") {
      return yield* new InvalidPath({ field, path: raw, problem: "not-a-directory" })
    }
    return ReservationPath.make(real)
  })

/**
 * An absolute path that need not exist (any more): normalized, with the symlinks of its deepest
 * existing ancestor resolved — so a deleted project directory is still found under the real path
 * it was reserved with.
 */
export const anyPath = (
  field: string,
  raw: string
): Effect.Effect<ReservationPath, InvalidPath, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function* () {
    yield* checkShape(field, raw)
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const normalized = path.resolve(raw)
    const missing: Array<string> = []
    let current = normalized
    while (true) {
      const real = yield* Effect.option(fs.realPath(current))
      if (real._tag === "Some") return ReservationPath.make(path.join(real.value, ...missing.reverse()))
      const parent = path.dirname(current)
      if (parent === current) return ReservationPath.make(normalized)
      missing.push(path.basename(current))
      current = parent
    }
  })

/** True when `inner` is `outer` or lies below it (whole path segments). */
export const isWithin = (outer: string, inner: string, separator: string): boolean =>
  inner === outer || inner.startsWith(outer.endsWith(separator) ? outer : `${outer}${separator}`)

/** True when one path is the other, or an ancestor of it. */
export const related = (a: string, b: string, separator: string): boolean =>
  isWithin(a, b, separator) || isWithin(b, a, separator)

/**
 * Succeeds when `target` is the working directory, an ancestor or a descendant of it, or when
 * the caller allowed unrelated paths; otherwise `UnrelatedPath`.
 */
export const checkRelated = (
  target: ReservationPath,
  cwd: ReservationPath,
  allowUnrelated: boolean
): Effect.Effect<void, UnrelatedPath, Path.Path> =>
  Effect.flatMap(Path.Path, (path) =>
    allowUnrelated || related(target, cwd, path.sep)
      ? Effect.void
      : Effect.fail(new UnrelatedPath({ path: target, cwd }))
  )

/** True when something exists at `target` (a failed check counts as existing: never prune on doubt). */
export const exists = (target: string): Effect.Effect<boolean, never, FileSystem.FileSystem> =>
  Effect.flatMap(FileSystem.FileSystem, (fs) =>
    Effect.catchAll(fs.exists(target), () => Effect.succeed(true))
  )

/** The most canonical paths one process remembers (then it starts over). */
const cacheLimit = 4096

/**
 * `existingDirectory` and `anyPath`, remembering each answer for an existing path: a process
 * resolves a spelling once (realpath and stat cost more than the reservation's statements). A
 * directory deleted later is still accepted by the same process under its remembered real path.
 */
export const cached = () => {
  const directories = new Map<string, ReservationPath>()
  const existing = new Map<string, ReservationPath>()
  const remember = (cache: Map<string, ReservationPath>, raw: string, real: ReservationPath) => {
    if (cache.size >= cacheLimit) cache.clear()
    cache.set(raw, real)
  }
  return {
    existingDirectory: (
      field: string,
      raw: string
    ): Effect.Effect<ReservationPath, InvalidPath, FileSystem.FileSystem | Path.Path> => {
      const hit = directories.get(raw)
      if (hit !== undefined) return Effect.succeed(hit)
      return Effect.tap(existingDirectory(field, raw), (real) =>
        Effect.sync(() => remember(directories, raw, real))
      )
    },
    anyPath: (
      field: string,
      raw: string
    ): Effect.Effect<ReservationPath, InvalidPath, FileSystem.FileSystem | Path.Path> => {
      const hit = directories.get(raw) ?? existing.get(raw)
      if (hit !== undefined) return Effect.succeed(hit)
      return Effect.gen(function* () {
        yield* checkShape(field, raw)
        const fs = yield* FileSystem.FileSystem
        const real = yield* Effect.option(fs.realPath(raw))
        if (real._tag === "Some") {
          const path = ReservationPath.make(real.value)
          remember(existing, raw, path)
          return path
        }
        return yield* anyPath(field, raw)
      })
    }
  }
}

/** The canonicalisers of one registry (see `cached`). */
export type Cached = ReturnType<typeof cached>

/** Every way a path check fails. */
export type PathError = InvalidPath | UnrelatedPath
