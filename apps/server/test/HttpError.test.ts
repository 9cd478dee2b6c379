import { HttpApp, HttpServerError, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Logger } from "effect"
import * as HttpError from "../src/HttpError.js"

/** `app` behind `render`, as a fetch-style handler; what `render` logged goes to `logged`. */
const handler = (app: HttpApp.Default<unknown>, logged: Array<string>) => {
  const capture = Logger.make(({ message, cause }) => {
    logged.push(`${String(message)} ${Cause.pretty(cause)}`)
  })
  return HttpApp.toWebHandler(
    HttpError.render(app).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
  )
}

const call = (app: HttpApp.Default<unknown>, url = "http://keel.test/queues?token=abc") =>
  Effect.promise(async () => {
    const logged: Array<string> = []
    const response = await handler(app, logged)(new Request(url))
    return { status: response.status, body: await response.text(), logged }
  })

const internal = JSON.stringify(HttpError.internalErrorBody)

describe("HttpError.render", () => {
  it.effect("a defect is a 500 with no detail in the body; the detail goes to the server log", () =>
    Effect.gen(function* () {
      const reply = yield* call(Effect.die(new Error("boom at postgres://keel:pw@db/keel")))
      expect(reply).toMatchObject({ status: 500, body: internal })
      expect(reply.logged.join("\n")).toContain("boom at")
    })
  )

  it.effect("an error no route declared is a 500 with the same body, whatever it carries", () =>
    Effect.gen(function* () {
      const reply = yield* call(Effect.fail({ _tag: "Surprise", detail: "internal table keel_x" }))
      expect(reply).toMatchObject({ status: 500, body: internal })
    })
  )

  it.effect("a missing route is a 404 NotFound naming the method and path, never the query", () =>
    Effect.gen(function* () {
      const app = Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
        Effect.fail(new HttpServerError.RouteNotFound({ request }))
      )
      const reply = yield* call(app)
      expect(reply.status).toBe(404)
      expect(JSON.parse(reply.body)).toEqual({ _tag: "NotFound", message: "no route for GET /queues" })
      expect(reply.logged).toEqual([])
    })
  )

  it.effect("a response passes through unchanged", () =>
    Effect.gen(function* () {
      const reply = yield* call(Effect.succeed(HttpServerResponse.text("fine", { status: 201 })))
      expect(reply).toMatchObject({ status: 201, body: "fine", logged: [] })
    })
  )
})
