/** Helpers of the reservation suites: a fresh directory on the server's disk, a reply's reservation. */
import { mkdirSync } from "node:fs"
import { join } from "node:path"
import type * as TestServer from "./TestServer.js"

/** A fresh directory `name` under `group` in the server's temp directory (created). */
export const directory = (server: TestServer.Running, group: string, name: string): string => {
  const path = join(server.database.dir, group, name)
  mkdirSync(path, { recursive: true })
  return path
}

/** The `reservation` object of a reply (fails the test when there is none). */
export const reservationOf = (reply: Record<string, unknown>): Record<string, unknown> => {
  const reservation = reply.reservation
  if (typeof reservation !== "object" || reservation === null) throw new Error(JSON.stringify(reply))
  return { ...reservation }
}
