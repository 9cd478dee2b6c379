/**
 * The API's hottest route, `POST /queues/{name}/messages` (`send`), answered before the router:
 * the platform's `HttpApi` router and handler (path and payload decoding through the endpoint's
 * schemas, the success encoding) cost about as much as the send itself. Only a request whose
 * answer is certainly the handler's is answered here — a plain path (the queue name without
 * percent-encoding, no query string), a JSON body that `Body.limit` read and parsed, a payload the
 * endpoint's schema decodes — with what the handler does: `Queue.send`, 201 and `{ "id": … }`.
 * Its failures are the handler's failures and leave through the same encoding (`HttpApiBuilder`'s
 * API-wide error schema). Every other request goes on to the router unchanged. Not used with
 * tracing, where the router names the request's span.
 */
import type { HttpApp } from "@effect/platform"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type * as Queue from "@keel/queue/Queue"
import * as Schemas from "@keel/queue/Schemas"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Body from "./Body.js"
import { Sent } from "./QueuesApi.js"

/** `/queues/{name}/messages` with a plain name (letters, digits, `_.~-`; nothing to decode). */
const sendPath = /^\/queues\/([A-Za-z0-9_.~-]+)\/messages$/

/** The queue a request addresses if it is a plain send, else undefined. */
export const queueOf = (method: string, url: string): string | undefined =>
  method === "POST" ? sendPath.exec(url)?.[1] : undefined

const decodeMessage = Schema.decodeUnknownOption(Schemas.OutgoingMessage)
const encodeSent = Schema.encodeSync(Sent)

/**
 * The middleware: `send` answered here when it can be, anything else passed to `app`. Mounted
 * inside `Body.limit` (which reads and parses the body) with `HttpApiBuilder.middleware`, so its
 * failures reach the API's error encoding: the send's typed failure travels as a defect there
 * (`Effect.orDie`) because a global middleware's type admits no endpoint error, and the encoding
 * answers `Cause.squash` of the cause — the same error, the same response (pinned by
 * `FastSend.e2e.test.ts` against the router's answers).
 */
export const middleware =
  (queue: Queue.Service) =>
  <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
      const name = queueOf(request.method, request.url)
      if (name === undefined) return app
      const decoded = Option.flatMap(Body.parsedJson(request), decodeMessage)
      if (Option.isNone(decoded)) return app
      const { payload, ...options } = decoded.value
      return queue.send(name, payload, options).pipe(
        Effect.map((id) => HttpServerResponse.unsafeJson(encodeSent({ id }), { status: 201 })),
        Effect.orDie
      )
    })
