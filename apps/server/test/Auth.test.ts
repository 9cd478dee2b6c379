import { HttpApp, HttpServerResponse } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Effect, FastCheck as fc, Option, Redacted } from "effect"
import * as Auth from "../src/Auth.js"

const secret = Redacted.make("s3cret-token-0123456789")

/** The middleware around an app that always answers 200 "ok", as a fetch-style handler. */
const handler = (token: Option.Option<Redacted.Redacted<string>>) =>
  HttpApp.toWebHandler(Auth.middleware(token)(Effect.succeed(HttpServerResponse.text("ok"))))

const get = (token: Option.Option<Redacted.Redacted<string>>, path: string, authorization?: string) =>
  Effect.promise(async () => {
    const response = await handler(token)(
      new Request(`http://keel.test${path}`, {
        headers: authorization === undefined ? {} : { authorization }
      })
    )
    return {
      status: response.status,
      body: await response.text(),
      challenge: response.headers.get("www-authenticate")
    }
  })

describe("Auth", () => {
  it("tokensMatch is true exactly when the strings are equal, whatever their lengths", () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (presented, expected) => {
        expect(Auth.tokensMatch(presented, Redacted.make(expected))).toBe(presented === expected)
        expect(Auth.tokensMatch(expected, Redacted.make(expected))).toBe(true)
      })
    )
    expect(Auth.tokensMatch("s3cret-token-0123456789", secret)).toBe(true)
    expect(Auth.tokensMatch("s3cret-token-012345678", secret)).toBe(false)
    expect(Auth.tokensMatch("s3cret-token-01234567890", secret)).toBe(false)
    expect(Auth.tokensMatch("", secret)).toBe(false)
    expect(Auth.tokensMatch("é", Redacted.make("e\u0301"))).toBe(false)
  })

  it("bearerToken reads `Bearer <token>` (scheme in any case, surrounding spaces ignored) and nothing else", () => {
    expect(Auth.bearerToken("Bearer abc")).toEqual(Option.some("abc"))
    expect(Auth.bearerToken("bearer abc")).toEqual(Option.some("abc"))
    expect(Auth.bearerToken("BEARER   abc  ")).toEqual(Option.some("abc"))
    for (const header of [
      undefined,
      "",
      "Bearer",
      "Bearer ",
      "Bearerabc",
      "Bearer a b",
      "Basic abc",
      "abc",
      " Bearer abc"
    ]) {
      expect(Auth.bearerToken(header), String(header)).toEqual(Option.none())
    }
  })

  it.effect(
    "with a token: no header, a wrong token or another scheme is a bare 401 with a Bearer challenge",
    () =>
      Effect.gen(function* () {
        const token = Option.some(secret)
        for (const authorization of [
          undefined,
          "Bearer wrong",
          "Bearer s3cret-token-012345678",
          `Basic ${Buffer.from("user:s3cret-token-0123456789").toString("base64")}`
        ]) {
          expect(yield* get(token, "/queues", authorization)).toEqual({
            status: 401,
            body: "",
            challenge: "Bearer"
          })
        }
        expect(yield* get(token, "/queues", "Bearer s3cret-token-0123456789")).toMatchObject({
          status: 200,
          body: "ok"
        })
        expect(yield* get(token, "/queues?x=1", "bearer  s3cret-token-0123456789 ")).toMatchObject({
          status: 200
        })
      })
  )

  it.effect("with a token: /health (with or without a query) needs none; lookalike paths do", () =>
    Effect.gen(function* () {
      const token = Option.some(secret)
      expect(yield* get(token, "/health")).toMatchObject({ status: 200 })
      expect(yield* get(token, "/health?verbose=1")).toMatchObject({ status: 200 })
      for (const path of ["/health/", "/healthz", "/health/../queues", "/%68ealth", "/metrics", "/docs"]) {
        expect(yield* get(token, path), path).toMatchObject({ status: 401 })
      }
    })
  )

  it.effect("without a token every request passes, whatever it carries", () =>
    Effect.gen(function* () {
      expect(yield* get(Option.none(), "/queues")).toMatchObject({ status: 200 })
      expect(yield* get(Option.none(), "/queues", "Bearer anything")).toMatchObject({ status: 200 })
    })
  )
})
