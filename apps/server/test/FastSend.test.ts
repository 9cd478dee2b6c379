import { describe, expect, it } from "@effect/vitest"
import * as FastSend from "../src/FastSend.js"

describe("which requests FastSend answers before the router", () => {
  it("a POST to /queues/{name}/messages with a plain name", () => {
    expect(FastSend.queueOf("POST", "/queues/jobs/messages")).toBe("jobs")
    expect(FastSend.queueOf("POST", "/queues/a.b_c~d-9/messages")).toBe("a.b_c~d-9")
    expect(FastSend.queueOf("POST", "/queues/NOPE/messages")).toBe("NOPE")
  })

  it("nothing the router could read differently: another method or path, percent-encoding, a query string", () => {
    for (const [method, url] of [
      ["PUT", "/queues/jobs/messages"],
      ["GET", "/queues/jobs/messages"],
      ["POST", "/queues/jobs/messages/batch"],
      ["POST", "/queues/jobs/messages/"],
      ["POST", "/queues/jobs/messages?x=1"],
      ["POST", "/queues/jo%62s/messages"],
      ["POST", "/queues//messages"],
      ["POST", "//queues/jobs/messages"],
      ["POST", "/queues/a/b/messages"]
    ] as const) {
      expect(FastSend.queueOf(method, url), `${method} ${url}`).toBeUndefined()
    }
  })
})
