/**
 * The request body limit (`KEEL_MAX_BODY_BYTES`). A body is read once, here, before any handler
 * runs: a declared `Content-Length` over the limit is refused before a byte is read, a chunked
 * body is counted as it arrives and refused as soon as it passes the limit. Either way the answer
 * is a 413 `BodyTooLarge` — the rest of the body is drained and discarded, never buffered, and the
 * connection is not reset (not even when the client asked to close it: `answerEarly`), so the
 * client reads the 413 instead of a broken pipe. A JSON body that does not parse, or nests deeper
 * than `maxJsonDepth`, is a 400 `InvalidJson` (the platform would turn the first into a 500, and
 * formatting the decode error of the second overflows the stack: a 500 too). A body declared as
 * anything but JSON (`Content-Type`) is a 415 `UnsupportedMediaType` before it is read: the
 * platform would parse a form or multipart upload from the stream already consumed here, and wait
 * forever.
 *
 * Why not the platform's `MaxBodySize`: when a body passes it, the platform destroys the request
 * stream, which resets the connection before any response can be written.
 */
import type * as Http from "node:http"
import type { HttpApp } from "@effect/platform"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpMethod from "@effect/platform/HttpMethod"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as UrlParams from "@effect/platform/UrlParams"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as Effect from "effect/Effect"
import * as Inspectable from "effect/Inspectable"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { ServerErrors } from "./ApiErrors.js"
import { BodyTooLarge, InvalidJson, UnsupportedMediaType } from "./HttpError.js"

/**
 * The bytes of `source`'s body, or `BodyTooLarge` as soon as more than `limit` arrive. A transport
 * error (the client went away mid-body) interrupts: there is nobody left to answer.
 */
export const readBounded = (
  source: Http.IncomingMessage,
  limit: number
): Effect.Effect<Buffer, BodyTooLarge> =>
  Effect.async<Buffer, BodyTooLarge>((resume) => {
    const chunks: Array<Buffer> = []
    let size = 0
    const stop = () => {
      source.off("data", onData)
      source.off("end", onEnd)
      source.off("error", onError)
    }
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) {
        stop()
        // Keep the stream flowing so the rest is discarded as it arrives (Node drains it after the
        // response); destroying it would reset the connection under the 413.
        source.resume()
        resume(Effect.fail(new BodyTooLarge({ limit })))
      } else {
        chunks.push(chunk)
      }
    }
    const onEnd = () => {
      stop()
      resume(Effect.succeed(Buffer.concat(chunks, size)))
    }
    const onError = () => {
      stop()
      resume(Effect.interrupt)
    }
    source.on("data", onData)
    source.once("end", onEnd)
    source.once("error", onError)
    return Effect.sync(stop)
  })

const decoder = new TextDecoder()

/**
 * True when the platform decodes this body as JSON: without a content type (an empty one counts as
 * none), or with one that mentions `application/json`.
 */
const isJson = (request: HttpServerRequest.HttpServerRequest): boolean => {
  const type = request.headers["content-type"]
  return type === undefined || type.trim() === "" || type.toLowerCase().includes("application/json")
}

/** The deepest nesting of arrays and objects a JSON body may have. */
export const maxJsonDepth = 256

/** True when `value` nests arrays and objects deeper than `limit` (walked without recursion). */
export const nestsDeeper = (value: unknown, limit: number): boolean => {
  const pending: Array<readonly [unknown, number]> = [[value, 0]]
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [item, depth] = next
    if (typeof item !== "object" || item === null) continue
    if (depth + 1 > limit) return true
    for (const child of Array.isArray(item) ? item : Object.values(item)) pending.push([child, depth + 1])
  }
  return false
}

/** `text` parsed as JSON, or why it is refused. */
const parseJson = (text: string): Effect.Effect<unknown, InvalidJson> =>
  Effect.flatMap(
    Effect.try({
      try: (): unknown => (text.length === 0 ? null : JSON.parse(text)),
      catch: (error) => new InvalidJson({ reason: error instanceof Error ? error.message : String(error) })
    }),
    (value) =>
      nestsDeeper(value, maxJsonDepth)
        ? Effect.fail(
            new InvalidJson({ reason: `it nests arrays and objects deeper than ${maxJsonDepth} levels` })
          )
        : Effect.succeed(value)
  )

/**
 * `original` with its body already read: every body accessor answers from `body`, and `json`
 * returns the value parsed up front. Everything else is the original request.
 */
class BufferedRequest implements HttpServerRequest.HttpServerRequest {
  readonly [HttpServerRequest.TypeId]: HttpServerRequest.TypeId = HttpServerRequest.TypeId
  readonly [HttpIncomingMessage.TypeId]: HttpIncomingMessage.TypeId = HttpIncomingMessage.TypeId

  constructor(
    readonly original: HttpServerRequest.HttpServerRequest,
    readonly body: Buffer,
    readonly parsed: Option.Option<unknown>
  ) {}

  get source() {
    return this.original.source
  }
  get url() {
    return this.original.url
  }
  get originalUrl() {
    return this.original.originalUrl
  }
  get method() {
    return this.original.method
  }
  get cookies() {
    return this.original.cookies
  }
  get headers() {
    return this.original.headers
  }
  get remoteAddress() {
    return this.original.remoteAddress
  }
  get multipart() {
    return this.original.multipart
  }
  get multipartStream() {
    return this.original.multipartStream
  }
  get upgrade() {
    return this.original.upgrade
  }
  get text(): Effect.Effect<string, HttpServerError.RequestError> {
    return Effect.succeed(decoder.decode(this.body))
  }
  get json(): Effect.Effect<unknown, HttpServerError.RequestError> {
    if (Option.isSome(this.parsed)) return Effect.succeed(this.parsed.value)
    return Effect.try({
      try: (): unknown => (this.body.length === 0 ? null : JSON.parse(decoder.decode(this.body))),
      catch: (cause) => new HttpServerError.RequestError({ request: this, reason: "Decode", cause })
    })
  }
  get urlParamsBody(): Effect.Effect<UrlParams.UrlParams, HttpServerError.RequestError> {
    return Effect.succeed(UrlParams.fromInput(new URLSearchParams(decoder.decode(this.body))))
  }
  get arrayBuffer(): Effect.Effect<ArrayBuffer, HttpServerError.RequestError> {
    return Effect.sync(() => {
      const copy = new ArrayBuffer(this.body.length)
      new Uint8Array(copy).set(this.body)
      return copy
    })
  }
  get stream(): Stream.Stream<Uint8Array, HttpServerError.RequestError> {
    return Stream.succeed(new Uint8Array(this.body))
  }
  modify(options: Parameters<HttpServerRequest.HttpServerRequest["modify"]>[0]) {
    return new BufferedRequest(this.original.modify(options), this.body, this.parsed)
  }
  toJSON(): unknown {
    return { _id: "@effect/platform/HttpServerRequest", method: this.method, url: this.originalUrl }
  }
  toString(): string {
    return `ServerRequest(${this.method} ${this.url})`
  }
  [Inspectable.NodeInspectSymbol](): unknown {
    return this.toJSON()
  }
}

/**
 * The JSON value of a body that `limit` read and parsed, if `request` is such a request (nothing is
 * read here): what a route answered before the router (`FastSend`) decodes.
 */
export const parsedJson = (request: HttpServerRequest.HttpServerRequest): Option.Option<unknown> =>
  request instanceof BufferedRequest ? request.parsed : Option.none()

/** `error` answered as the API answers it: its wire form, with its status. */
const answer = <A, I>(schema: Schema.Schema<A, I>, status: number, error: A) =>
  HttpServerResponse.unsafeJson(Schema.encodeSync(schema)(error), { status })

/**
 * `error` answered before the body has arrived in full. `Connection: keep-alive` makes node read
 * and discard the rest of the body after the answer (within `KEEL_REQUEST_TIMEOUT`) instead of
 * closing at once, even when the client asked to close: a connection closed with unread data is
 * reset, and the reset can destroy the answer before the client reads it (a lingering close).
 */
const answerEarly = <A, I>(schema: Schema.Schema<A, I>, status: number, error: A) =>
  HttpServerResponse.setHeader(answer(schema, status, error), "connection", "keep-alive")

/**
 * The body-limit middleware for the API (mounted with `HttpApiBuilder.middleware`, so it runs
 * after auth and routing has not begun): a body over the limit is answered 413 `BodyTooLarge`, a
 * JSON body that does not parse 400 `InvalidJson`, in the same wire form as every API error.
 */
export const limit =
  (maxBytes: number) =>
  (app: HttpApp.Default): HttpApp.Default =>
    Effect.catchTags(guarded(maxBytes, app), {
      BodyTooLarge: (error) => Effect.succeed(answerEarly(ServerErrors.BodyTooLarge, 413, error)),
      InvalidJson: (error) => Effect.succeed(answer(ServerErrors.InvalidJson, 400, error)),
      UnsupportedMediaType: (error) =>
        Effect.succeed(answerEarly(ServerErrors.UnsupportedMediaType, 415, error))
    })

const guarded = (
  maxBytes: number,
  app: HttpApp.Default
): HttpApp.Default<BodyTooLarge | InvalidJson | UnsupportedMediaType> =>
  // Plain combinators rather than a generator: this runs for every request.
  Effect.flatMap(
    HttpServerRequest.HttpServerRequest,
    (request): HttpApp.Default<BodyTooLarge | InvalidJson | UnsupportedMediaType> => {
      if (!HttpMethod.hasBody(request.method)) return app
      if (!isJson(request)) {
        return Effect.fail(new UnsupportedMediaType({ contentType: request.headers["content-type"] ?? "" }))
      }
      const declared = request.headers["content-length"]
      const chunked = request.headers["transfer-encoding"] !== undefined
      if (declared === undefined && !chunked) return app
      const size = declared === undefined ? undefined : Number(declared)
      if (size !== undefined && size > maxBytes)
        return Effect.fail(new BodyTooLarge({ limit: maxBytes, size }))
      return Effect.flatMap(readBounded(NodeHttpServerRequest.toIncomingMessage(request), maxBytes), (body) =>
        Effect.flatMap(parseJson(decoder.decode(body)), (parsed) =>
          Effect.provideService(
            app,
            HttpServerRequest.HttpServerRequest,
            new BufferedRequest(request, body, Option.some(parsed))
          )
        )
      )
    }
  )
