/**
 * A small file system of the test's own (tmpfs, mounted for the scope): to fill a disk, or to make
 * one read-only, under a real database. Mounting needs root; `unavailable` says why a machine
 * cannot, and tests skip with that reason.
 */
import { mkdtempSync, rmSync, statfsSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { exec } from "@keel/sql/test/Processes"
import type { Scope } from "effect"
import * as Effect from "effect/Effect"

/** Why tmpfs cannot be mounted here, or undefined when it can. */
export const unavailable = (): string | undefined =>
  process.platform !== "linux"
    ? "tmpfs mounts need Linux"
    : process.getuid?.() !== 0
      ? "mounting a tmpfs needs root"
      : undefined

/** A mounted tmpfs. */
export interface Mount {
  readonly dir: string
  /** Bytes still free on it. */
  readonly free: () => number
  /** Remounts it read-only (or read-write again). */
  readonly readOnly: (on: boolean) => Effect.Effect<void>
}

/** Mounts a tmpfs of `bytes` on a fresh directory; the scope unmounts and removes it. */
export const mount = (bytes: number): Effect.Effect<Mount, never, Scope.Scope> =>
  Effect.gen(function* () {
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => mkdtempSync(join(tmpdir(), "keel-tmpfs-"))),
      (made) => Effect.sync(() => rmSync(made, { recursive: true, force: true }))
    )
    yield* Effect.acquireRelease(
      Effect.orDie(
        exec("mount", ["-t", "tmpfs", "-o", `size=${bytes}`, "tmpfs", dir], { timeoutMs: 30_000 })
      ),
      () => Effect.ignore(exec("umount", ["-l", dir], { timeoutMs: 30_000 }))
    )
    return {
      dir,
      free: () => {
        const stats = statfsSync(dir)
        return stats.bavail * stats.bsize
      },
      readOnly: (on) =>
        Effect.orDie(exec("mount", ["-o", `remount,${on ? "ro" : "rw"}`, dir], { timeoutMs: 30_000 }))
    }
  })
