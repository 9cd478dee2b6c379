/**
 * How errors cross the HTTP boundary. Every typed error is answered with a JSON body
 * `{ _tag, message, ...fields }` and a status chosen per error in `Api.ts`; the errors the server
 * itself raises (body limits, bad JSON, media types, unknown routes, failed health checks, unexpected failures)
 * are defined here.
 */

import type { HttpApp } from "@effect/platform"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"

/**
 * `schema` on the wire with its `message` added, so a client gets the same one-line explanation
 * the CLI prints. Decoding drops the message again (the error class derives it from its fields).
 */
export const withMessage = <A extends { readonly message: string }, I extends object>(
  schema: Schema.Schema<A, I>,
  identifier: string
): Schema.Schema<A, I & { readonly message: string }> => {
  const wire = Schema.extend(Schema.encodedSchema(schema), Schema.Struct({ message: Schema.String }))
  return Schema.transformOrFail(wire, Schema.typeSchema(schema), {
    strict: false,
    decode: (encoded, options) => {
      const { message: _message, ...fields } = encoded
      return ParseResult.decodeUnknown(schema)(fields, options)
    },
    encode: (error, options) =>
      ParseResult.map(ParseResult.encodeUnknown(schema)(error, options), (fields) => ({
        ...fields,
        message: error.message
      }))
  }).annotations({ identifier })
}

/** The request body is larger than `KEEL_MAX_BODY_BYTES`. Nothing was read past the limit or changed. */
export class BodyTooLarge extends Schema.TaggedError<BodyTooLarge>()(
  "BodyTooLarge",
  {
    /** The largest body accepted, in bytes. */
    limit: Schema.Number,
    /** The declared `Content-Length`, when the client sent one. */
    size: Schema.optional(Schema.Number)
  },
  HttpApiSchema.annotations({ status: 413 })
) {
  override get message(): string {
    return this.size === undefined
      ? `the request body exceeds the limit of ${this.limit} bytes`
      : `a request body of ${this.size} bytes exceeds the limit of ${this.limit} bytes`
  }
}

/** The request body is not JSON text. Nothing was changed. */
export class InvalidJson extends Schema.TaggedError<InvalidJson>()(
  "InvalidJson",
  { reason: Schema.String },
  HttpApiSchema.annotations({ status: 400 })
) {
  override get message(): string {
    return `the request body is not valid JSON: ${this.reason}`
  }
}

/** The request body is not JSON by its `Content-Type` (form, multipart, text…): the API takes JSON only. */
export class UnsupportedMediaType extends Schema.TaggedError<UnsupportedMediaType>()(
  "UnsupportedMediaType",
  {
    /** The content type the client declared. */
    contentType: Schema.String
  },
  HttpApiSchema.annotations({ status: 415 })
) {
  override get message(): string {
    return `request bodies must be JSON (application/json), not ${JSON.stringify(this.contentType)}`
  }
}

/** No cursor is stored or pending for this peer. */
export class CursorNotFound extends Schema.TaggedError<CursorNotFound>()(
  "CursorNotFound",
  { peer: Schema.String },
  HttpApiSchema.annotations({ status: 404 })
) {
  override get message(): string {
    return `no cursor for peer ${JSON.stringify(this.peer)}`
  }
}

/** The database did not answer the health check in time, or failed it. */
export class Unhealthy extends Schema.TaggedError<Unhealthy>()(
  "Unhealthy",
  {
    status: Schema.Literal("unavailable"),
    /** What failed, without connection details. */
    reason: Schema.String
  },
  HttpApiSchema.annotations({ status: 503 })
) {
  override get message(): string {
    return `the database is unavailable: ${this.reason}`
  }
}

/**
 * The body of a request that reached the server while it was not serving: before the API is
 * attached (start-up) or after it was detached (shutdown). Answered 503 with `Retry-After`.
 */
export const notServingBody = (phase: "starting" | "stopping") =>
  ({ _tag: "Unavailable", message: `Keel is ${phase}; retry shortly` }) as const

/** The JSON body of every 500: no detail, whatever happened (the server log has it). */
export const internalErrorBody = { _tag: "InternalError", message: "internal error" } as const

/**
 * Answers whatever escaped the API: an unknown route is a 404 `NotFound`; any other failure or
 * defect is logged with its full cause and answered 500 `InternalError`, without detail.
 * Interruption (the client went away, or shutdown) passes through: there is nobody to answer.
 */
export const render = <E, R>(
  app: HttpApp.Default<E, R>
): HttpApp.Default<E, R | HttpServerRequest.HttpServerRequest> =>
  Effect.catchAllCause(app, (cause) => {
    if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause)
    const failure = Cause.failureOption(cause)
    if (Option.isSome(failure) && Predicate.isTagged(failure.value, "RouteNotFound")) {
      return Effect.map(HttpServerRequest.HttpServerRequest, (request) =>
        HttpServerResponse.unsafeJson(
          { _tag: "NotFound", message: `no route for ${request.method} ${request.url.split("?")[0]}` },
          { status: 404 }
        )
      )
    }
    return Effect.as(
      Effect.logError("unexpected failure", cause),
      HttpServerResponse.unsafeJson(internalErrorBody, { status: 500 })
    )
  })
