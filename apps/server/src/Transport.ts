/**
 * What the node server answers itself, before a request reaches the API, and how long it waits
 * for one. Node would answer malformed HTTP, oversized headers, a slow client, an unknown
 * `Expect` or a `CONNECT` with a bare status line (or a closed socket); here each is a JSON
 * `{ _tag, message }` like every other error. The connection is then closed, except after a 417
 * (see `lingerMs` for why what the client still sends is read first):
 *
 * - 400 `MalformedRequest`: the bytes are not HTTP/1.1 (bad method, header, framing, version);
 * - 408 `RequestTimeout`: headers not complete within `KEEL_HEADERS_TIMEOUT`, or the whole request
 *   (headers and body) not received within `KEEL_REQUEST_TIMEOUT` — the slow-loris defence;
 * - 431 `HeadersTooLarge`: headers over node's limit (16 KiB);
 * - 417 `ExpectationFailed`: an `Expect` other than `100-continue`;
 * - 405 `MethodNotAllowed`: `CONNECT` (Keel is no proxy).
 *
 * The timeouts bound receiving a request, not answering it: a long-poll `read` whose body has
 * arrived may wait its full 20 s.
 */
import * as Http from "node:http"
import type * as Stream from "node:stream"
import * as Duration from "effect/Duration"
import * as Predicate from "effect/Predicate"

/** How long a client may take to send its request. */
export interface Timeouts {
  /** From the connection (or the previous request) to the end of the headers. */
  readonly headers: Duration.Duration
  /** From the start of the request to its last byte, body included. Not less than `headers`. */
  readonly request: Duration.Duration
}

/**
 * How often node checks the timeouts: a slow client is cut at most this much after its deadline.
 * (Node's default is 30 s, which would let a slow-loris client hold a socket 30 s past it.)
 */
export const checkIntervalMs = 1_000

/** The options of `Http.createServer` that enforce `timeouts`. */
export const serverOptions = (timeouts: Timeouts): Http.ServerOptions => ({
  headersTimeout: Duration.toMillis(timeouts.headers),
  requestTimeout: Duration.toMillis(timeouts.request),
  connectionsCheckingInterval: checkIntervalMs
})

/** A complete response that closes the connection: `status` with a JSON `{ _tag, message }` body. */
export const rawAnswer = (status: number, tag: string, message: string): string => {
  const body = JSON.stringify({ _tag: tag, message })
  return (
    `HTTP/1.1 ${status} ${Http.STATUS_CODES[status] ?? ""}\r\n` +
    "Content-Type: application/json\r\n" +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    "Connection: close\r\n\r\n" +
    body
  )
}

const codeOf = (error: Error): string =>
  Predicate.hasProperty(error, "code") && typeof error.code === "string" ? error.code : ""

/** The answer to a request node could not accept (`clientError`), by its error code. */
export const clientErrorAnswer = (error: Error, timeouts: Timeouts): string => {
  switch (codeOf(error)) {
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return rawAnswer(
        408,
        "RequestTimeout",
        `the request was not received in time: headers are expected within ${Duration.format(timeouts.headers)}, ` +
          `the whole request within ${Duration.format(timeouts.request)}`
      )
    case "HPE_HEADER_OVERFLOW":
      return rawAnswer(431, "HeadersTooLarge", `the request headers exceed ${Http.maxHeaderSize} bytes`)
    case "HPE_CHUNK_EXTENSIONS_OVERFLOW":
      return rawAnswer(
        413,
        "ChunkExtensionsTooLarge",
        "the chunk extensions of the request body are too large"
      )
    default:
      // llhttp's reason ("Invalid header value char") names the rule broken, never the input.
      return rawAnswer(
        400,
        "MalformedRequest",
        `the request is not valid HTTP/1.1: ${Predicate.hasProperty(error, "reason") && typeof error.reason === "string" ? error.reason : error.message}`
      )
  }
}

/**
 * A node server enforcing `timeouts` and giving the answers above, with `listener` for requests.
 * A response already under way on a connection is never interleaved with another one: the
 * connection is then only closed, as node itself does.
 */
export const makeServer = (timeouts: Timeouts, listener: Http.RequestListener): Http.Server => {
  // The latest response of each connection (node keeps it in a private field).
  const responses = new WeakMap<object, Http.ServerResponse>()
  // Connections answered here and closing: node reports every later byte as another error.
  const closing = new WeakSet<object>()
  const server = Http.createServer(serverOptions(timeouts), (request, response) => {
    responses.set(request.socket, response)
    listener(request, response)
  })
  server.on("clientError", (error: Error, socket: Stream.Duplex) => {
    if (closing.has(socket)) return
    closing.add(socket)
    const current = responses.get(socket)
    const answerable = current === undefined || current.writableFinished || !current.headersSent
    if (socket.writable && answerable) lingeringClose(socket, clientErrorAnswer(error, timeouts))
    else socket.destroy()
  })
  server.on("checkExpectation", (_request: Http.IncomingMessage, response: Http.ServerResponse) => {
    const body = JSON.stringify({
      _tag: "ExpectationFailed",
      message: "the only expectation supported is 100-continue"
    })
    // Kept alive so that node discards the body it did not ask for instead of resetting (see `Body`).
    response.writeHead(417, { "content-type": "application/json", connection: "keep-alive" })
    response.end(body)
  })
  server.on("connect", (_request: Http.IncomingMessage, socket: Stream.Duplex) => {
    lingeringClose(
      socket,
      rawAnswer(405, "MethodNotAllowed", "CONNECT is not supported: Keel is not a proxy")
    )
  })
  return server
}

/**
 * How long a connection refused here is still read after its answer. Closing a connection with
 * unread data (a body still arriving) resets it, and the reset can destroy the answer before the
 * client reads it; so the answer is sent with a half-close (FIN), what follows is read and
 * discarded, and the connection is destroyed once the client closes, or after this long.
 */
export const lingerMs = 2_000

const lingeringClose = (socket: Stream.Duplex, answer: string): void => {
  socket.on("error", () => undefined)
  socket.end(answer)
  // A socket handed over by node (CONNECT) is paused: it must flow for its data to be discarded.
  socket.resume()
  setTimeout(() => socket.destroy(), lingerMs).unref()
}
