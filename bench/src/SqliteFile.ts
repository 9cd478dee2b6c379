/** A benchmark's SQLite database files. */
import { rmSync } from "node:fs"

/** Removes the SQLite database `file` and its WAL and shared-memory files, if they exist. */
export const remove = (file: string): void => {
  for (const suffix of ["", "-wal", "-shm"]) rmSync(`${file}${suffix}`, { force: true })
}
