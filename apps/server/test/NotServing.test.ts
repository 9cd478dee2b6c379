import type * as Http from "node:http"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Server from "../src/Server.js"

/** Listens on a random port for the scope; its URL. */
const listen = (server: Http.Server) =>
  Effect.acquireRelease(
    Effect.async<string>((resume) => {
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        resume(
          Effect.succeed(
            `http://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}`
          )
        )
      })
    }),
    () => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
  )

const get = (url: string) =>
  Effect.promise(async () => {
    const response = await fetch(url, { method: "POST", body: "{}", signal: AbortSignal.timeout(5_000) })
    return { status: response.status, headers: response.headers, json: (await response.json()) as unknown }
  })

describe("the node server before and after the API is attached", () => {
  it.scopedLive(
    "with no API handler every request is answered 503 at once, with Retry-After and a typed body",
    () =>
      Effect.gen(function* () {
        const node = Server.makeNodeServer()
        const url = yield* listen(node)
        const reply = yield* get(`${url}/queues/q/messages`)
        expect(reply.status).toBe(503)
        expect(reply.headers.get("retry-after")).toBe("1")
        expect(reply.headers.get("connection")).toBe("close")
        expect(reply.json).toEqual({ _tag: "Unavailable", message: "Keel is starting; retry shortly" })
      })
  )

  it.scopedLive("once a handler is attached it alone answers; detached again, 503 resumes", () =>
    Effect.gen(function* () {
      const node = Server.makeNodeServer()
      const url = yield* listen(node)
      const handler = (_request: Http.IncomingMessage, response: Http.ServerResponse) => {
        response.writeHead(201, { "content-type": "application/json" })
        response.end(JSON.stringify({ served: true }))
      }
      node.on("request", handler)
      const served = yield* get(url)
      expect(served.status).toBe(201)
      expect(served.json).toEqual({ served: true })
      node.off("request", handler)
      expect((yield* get(url)).status).toBe(503)
    })
  )
})
