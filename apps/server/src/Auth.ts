/**
 * Optional bearer-token authentication. When a token is configured, every request except
 * `GET /health` and the dashboard's static files (`/ui`) must carry `Authorization: Bearer <token>`;
 * anything else is a bare 401 with no detail. Tokens are compared in constant time (over SHA-256 digests, so lengths leak nothing).
 */
import { createHash, timingSafeEqual } from "node:crypto"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"

const digest = (value: string): Buffer => createHash("sha256").update(value, "utf8").digest()

/** True when `presented` equals `expected`, compared in constant time. */
export const tokensMatch = (presented: string, expected: Redacted.Redacted<string>): boolean =>
  timingSafeEqual(digest(presented), digest(Redacted.value(expected)))

/** Paths that never require a token. */
export const publicPaths: ReadonlySet<string> = new Set(["/health"])

/**
 * Whether `path` is served without a token: `publicPaths`, and the dashboard's static files under
 * `/ui` (they hold no data; the page asks for the token and sends it with every API request).
 */
export const isPublic = (path: string): boolean =>
  publicPaths.has(path) || path === "/ui" || path.startsWith("/ui/")

const bearer = /^Bearer\s+(\S+)\s*$/i

/** The token of an `Authorization: Bearer …` header, if that is what the header holds. */
export const bearerToken = (header: string | undefined): Option.Option<string> => {
  const match = header === undefined ? null : bearer.exec(header)
  return match?.[1] === undefined ? Option.none() : Option.some(match[1])
}

const unauthorized = HttpServerResponse.empty({ status: 401, headers: { "www-authenticate": "Bearer" } })

/** `app` for a request that presents `token` (or asks for a public path), else 401. */
const authorized = <E, R>(token: Redacted.Redacted<string>, app: HttpApp.Default<E, R>) =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const path = new URL(request.url, "http://keel").pathname
    if (isPublic(path)) return yield* app
    const presented = bearerToken(request.headers.authorization)
    if (Option.isSome(presented) && tokensMatch(presented.value, token)) return yield* app
    return unauthorized
  })

/** The middleware: a no-op when `token` is `None`. */
export const middleware = (token: Option.Option<Redacted.Redacted<string>>) =>
  HttpMiddleware.make((app) =>
    // Without a token every request goes through as it is (nothing per request).
    Option.isNone(token) ? app : authorized(token.value, app)
  )
