/**
 * The project and task trop guesses from git when nothing sets them, read from `.git` with the
 * platform `FileSystem` (no `git` process): the nearest directory from the start upward whose
 * `.git` is a repository — a directory, or a file `gitdir: <path>` (a linked worktree or a
 * submodule) — gives
 * - the project: the name of the repository's common directory (`commondir`, so a linked
 *   worktree names its main repository), or of the directory holding it when that is `.git`,
 *   without a trailing `.git`;
 * - the task: the working directory's name when `.git` is a file (a linked worktree, or a
 *   submodule, as trop's `is_worktree` decides), else the branch of `HEAD` (`ref: refs/heads/…`);
 *   none on a detached `HEAD`.
 * A guess that is not a valid label is dropped. Anything unreadable, malformed, oversized or not a
 * regular file is "no guess", never an error; a `.git` that is not a repository is skipped and the
 * search goes on upward, as gix's discovery does.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { type Label, validateLabel } from "./Schemas.js"

/** What git says about a directory; each field is `undefined` when there is no usable guess. */
export interface Guess {
  readonly project: Label | undefined
  readonly task: Label | undefined
}

/** No guess at all. */
export const none: Guess = { project: undefined, task: undefined }

/** The largest `.git` file, `HEAD` or `commondir` read; a larger one is not a repository's. */
const maxFileBytes = 16_384

/** Where a repository was found. */
interface Found {
  /** The working directory (holding `.git`). */
  readonly workDir: string
  /** The repository's (or linked worktree's) own git directory. */
  readonly gitDir: string
  /** `.git` is a file (a linked worktree or a submodule). */
  readonly linked: boolean
}

/** The text of a small regular file, or none (missing, not a file, too large, unreadable). */
const smallFile = (fs: FileSystem.FileSystem, file: string) =>
  Effect.gen(function* () {
    const info = yield* fs.stat(file)
    if (info.type !== "File" || info.size > BigInt(maxFileBytes)) return Option.none<string>()
    return Option.some(yield* fs.readFileString(file))
  }).pipe(Effect.orElseSucceed(() => Option.none<string>()))

const isDirectory = (fs: FileSystem.FileSystem, dir: string) =>
  fs.stat(dir).pipe(
    Effect.map((info) => info.type === "Directory"),
    Effect.orElseSucceed(() => false)
  )

/** The path a `.git` file points to (`gitdir: <path>`, relative to `dir`), or none. */
export const parseGitFile = (text: string): Option.Option<string> => {
  const match = /^gitdir: ?(.+?)\r?\n?$/.exec(text)
  const target = match?.[1]
  return target === undefined || target.includes("\0") || target.trim() === ""
    ? Option.none()
    : Option.some(target)
}

/** The branch `HEAD` is on (`ref: refs/heads/<branch>`), or none (detached, another ref, malformed). */
export const parseHead = (text: string): Option.Option<string> => {
  const match = /^ref: ?refs\/heads\/(.+?)\r?\n?$/.exec(text)
  const branch = match?.[1]
  return branch === undefined || branch.includes("\0") ? Option.none() : Option.some(branch)
}

/** A git directory, as gix accepts one: a directory with `HEAD`, `objects` (or `commondir`) and `refs`. */
const isGitDir = (fs: FileSystem.FileSystem, path: Path.Path, dir: string) =>
  Effect.gen(function* () {
    if (!(yield* isDirectory(fs, dir))) return false
    if (Option.isNone(yield* smallFile(fs, path.join(dir, "HEAD")))) return false
    if (Option.isSome(yield* smallFile(fs, path.join(dir, "commondir")))) return true
    return (
      (yield* isDirectory(fs, path.join(dir, "objects"))) && (yield* isDirectory(fs, path.join(dir, "refs")))
    )
  })

/** The repository whose `.git` is in `dir`, or none. */
const repositoryAt = (fs: FileSystem.FileSystem, path: Path.Path, dir: string) =>
  Effect.gen(function* () {
    const dotGit = path.join(dir, ".git")
    const info = yield* Effect.option(fs.stat(dotGit))
    if (Option.isNone(info)) return Option.none<Found>()
    if (info.value.type === "Directory") {
      return (yield* isGitDir(fs, path, dotGit))
        ? Option.some<Found>({ workDir: dir, gitDir: dotGit, linked: false })
        : Option.none<Found>()
    }
    const target = Option.flatMap(yield* smallFile(fs, dotGit), parseGitFile)
    if (Option.isNone(target)) return Option.none<Found>()
    const gitDir = path.resolve(dir, target.value)
    return (yield* isGitDir(fs, path, gitDir))
      ? Option.some<Found>({ workDir: dir, gitDir, linked: true })
      : Option.none<Found>()
  })

/** The nearest repository from `start` upward. */
const discover = (fs: FileSystem.FileSystem, path: Path.Path, start: string) =>
  Effect.gen(function* () {
    let dir = path.resolve(start)
    for (;;) {
      const found = yield* repositoryAt(fs, path, dir)
      if (Option.isSome(found)) return found
      const parent = path.dirname(dir)
      if (parent === dir) return Option.none<Found>()
      dir = parent
    }
  })

const label = (value: string | undefined, field: string) =>
  value === undefined
    ? Effect.succeed(undefined)
    : validateLabel(value, field).pipe(Effect.orElseSucceed(() => undefined))

/** The repository's name: its common directory's (or, for `<name>/.git`, `<name>`), without `.git`. */
const projectOf = (fs: FileSystem.FileSystem, path: Path.Path, found: Found) =>
  Effect.gen(function* () {
    const commondir = yield* smallFile(fs, path.join(found.gitDir, "commondir"))
    const common = Option.match(commondir, {
      onNone: () => found.gitDir,
      onSome: (text) => path.resolve(found.gitDir, text.trim())
    })
    const canonical = yield* Effect.option(fs.realPath(common))
    if (Option.isNone(canonical)) return undefined
    const name = path.basename(canonical.value)
    const repository = name === ".git" ? path.basename(path.dirname(canonical.value)) : name
    return repository.endsWith(".git") ? repository.slice(0, -".git".length) : repository
  })

/** The task: a linked working directory's name, else the branch `HEAD` is on. */
const taskOf = (fs: FileSystem.FileSystem, path: Path.Path, found: Found) =>
  found.linked
    ? Effect.succeed(path.basename(found.workDir))
    : Effect.map(smallFile(fs, path.join(found.gitDir, "HEAD")), (head) =>
        Option.getOrUndefined(Option.flatMap(head, parseHead))
      )

/** trop's guess of project and task for `start` (a directory); never fails, `none` outside a repository. */
export const infer = (start: string): Effect.Effect<Guess, never, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const found = yield* discover(fs, path, start)
    if (Option.isNone(found)) return none
    return {
      project: yield* label(yield* projectOf(fs, path, found.value), "project"),
      task: yield* label(yield* taskOf(fs, path, found.value), "task")
    }
  })
