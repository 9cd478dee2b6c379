/**
 * Why a SQLite file could not be opened, in words a user can act on. SQLite itself says only
 * "unable to open database file" or "file is not a database"; the file system tells which: a
 * directory, another kind of file, a missing directory, a read-only file or file system.
 */
import { accessSync, closeSync, constants, openSync, readSync, statSync } from "node:fs"
import { dirname } from "node:path"
import { DatabaseFailure, type DbError, isDbError } from "../DbError.js"

const header = "SQLite format 3\u0000"

const errorCode = (error: unknown): string =>
  typeof error === "object" && error !== null && "code" in error ? String(error.code) : ""

/** What is wrong with `file` as a database file, if the file system can tell. */
export const diagnose = (file: string): string | undefined => {
  let stats: ReturnType<typeof statSync>
  try {
    stats = statSync(file)
  } catch (error) {
    if (errorCode(error) !== "ENOENT") return undefined
    try {
      if (!statSync(dirname(file)).isDirectory()) return `${dirname(file)} is not a directory`
    } catch {
      return `the directory ${dirname(file)} does not exist`
    }
    try {
      accessSync(dirname(file), constants.W_OK)
    } catch (error) {
      return errorCode(error) === "EROFS"
        ? `${dirname(file)} is on a read-only file system`
        : `the directory ${dirname(file)} is not writable`
    }
    return undefined
  }
  if (stats.isDirectory()) return `${file} is a directory, not a database file`
  if (!stats.isFile()) return `${file} is not a regular file`
  if (stats.size > 0) {
    const bytes = Buffer.alloc(header.length)
    let fd: number | undefined
    try {
      fd = openSync(file, "r")
      readSync(fd, bytes, 0, bytes.length, 0)
      if (bytes.toString("latin1") !== header) return `${file} is not a SQLite database`
    } catch {
      return `${file} cannot be read`
    } finally {
      if (fd !== undefined) closeSync(fd)
    }
  }
  for (const path of [file, dirname(file)]) {
    try {
      accessSync(path, constants.W_OK)
    } catch (error) {
      return errorCode(error) === "EROFS"
        ? `${file} is on a read-only file system`
        : `${path} is not writable`
    }
  }
  return undefined
}

/**
 * `error`, with the diagnosis of `file` in front of its message when SQLite's own failure says
 * too little (any `DatabaseFailure`); other errors (busy, locked) are returned unchanged.
 */
export const explain = <E>(file: string, error: E | DbError): E | DbError => {
  if (!isDbError(error) || error._tag !== "DatabaseFailure") return error
  const diagnosis = diagnose(file)
  return diagnosis === undefined
    ? error
    : new DatabaseFailure({ code: error.code, message: `${diagnosis} (${error.message})` })
}
