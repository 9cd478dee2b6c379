/** Assertions on replies shared by the end-to-end suites. */
import { expect } from "@effect/vitest"
import type { Reply } from "./TestServer.js"

/** The reply's JSON body as a record (fails the test when it is not one). */
export const body = (reply: Reply): Record<string, unknown> => {
  const json = reply.json
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new Error(`expected a JSON object, got ${reply.status}: ${reply.text}`)
  }
  return { ...json }
}

/** A typed error reply: `status`, and a JSON body `{ _tag, message, ... }` with this tag. */
export const expectError = (reply: Reply, status: number, tag: string): Record<string, unknown> => {
  expect({ status: reply.status, tag: body(reply)._tag }, reply.text).toEqual({ status, tag })
  expect(typeof body(reply).message, reply.text).toBe("string")
  expect(reply.headers.get("content-type") ?? "").toContain("application/json")
  return body(reply)
}

/** A success reply with `status`; its JSON body. */
export const expectOk = (reply: Reply, status = 200): Record<string, unknown> => {
  expect(reply.status, reply.text).toBe(status)
  return reply.text === "" ? {} : body(reply)
}

/** The array under `key` of a JSON body. */
export const list = (
  record: Record<string, unknown>,
  key: string
): ReadonlyArray<Record<string, unknown>> => {
  const value = record[key]
  if (!Array.isArray(value)) throw new Error(`expected an array at ${key}: ${JSON.stringify(record)}`)
  return value.map((entry: unknown) => {
    if (typeof entry !== "object" || entry === null) throw new Error(`expected objects at ${key}`)
    return { ...entry }
  })
}
