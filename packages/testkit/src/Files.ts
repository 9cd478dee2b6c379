/**
 * Real files for fault tests: what is on disk, to show that a refused operation wrote nothing,
 * and a free TCP port for a server that must come back on the same one.
 */
import { createHash } from "node:crypto"
import { readdirSync, readFileSync } from "node:fs"
import * as Net from "node:net"
import { join } from "node:path"
import * as Effect from "effect/Effect"

/** Every file under `dir` (recursively) with the SHA-1 of its bytes: equal snapshots, nothing written. */
export const snapshot = (dir: string): Record<string, string> =>
  Object.fromEntries(
    readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((entry) => entry.isFile())
      .map((entry) => {
        const path = join(entry.parentPath, entry.name)
        return [path, createHash("sha1").update(readFileSync(path)).digest("hex")]
      })
  )

/** A TCP port on 127.0.0.1 that was free a moment ago (bound, read, released). */
export const freePort: Effect.Effect<number> = Effect.async<number>((resume) => {
  const server = Net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})
