/**
 * HTTP/1.1 spoken byte by byte over a plain TCP socket, for hostile-input tests: `fetch` and
 * `node:http` refuse to send what these tests must send (invalid header bytes, a body that is not
 * UTF-8, a lying `Content-Length`, headers trickled one byte at a time). The response is parsed
 * just far enough to read its status, headers and body (`Content-Length` or chunked).
 */
import * as Net from "node:net"
import { Duration, Effect, Option } from "effect"

/** A parsed response. */
export interface RawReply {
  readonly status: number
  /** Header names in lower case; a repeated header keeps its last value. */
  readonly headers: Readonly<Record<string, string>>
  readonly body: Buffer
  /** Milliseconds from the first byte written to the whole response read. */
  readonly ms: number
}

/** How a raw exchange ended. */
export type Outcome =
  | { readonly _tag: "Reply"; readonly reply: RawReply }
  /** The server closed the connection without a (complete) response. */
  | { readonly _tag: "Closed"; readonly ms: number; readonly received: Buffer }
  | { readonly _tag: "TimedOut"; readonly ms: number; readonly received: Buffer }

const headerEnd = Buffer.from("\r\n\r\n")

/** Decodes a chunked body; `None` while it is incomplete. */
const dechunk = (data: Buffer): Option.Option<Buffer> => {
  const parts: Array<Buffer> = []
  let at = 0
  for (;;) {
    const lineEnd = data.indexOf("\r\n", at)
    if (lineEnd === -1) return Option.none()
    const size = Number.parseInt(data.subarray(at, lineEnd).toString("latin1").split(";")[0] ?? "", 16)
    if (Number.isNaN(size)) return Option.some(Buffer.concat(parts))
    const start = lineEnd + 2
    if (size === 0) return Option.some(Buffer.concat(parts))
    if (data.length < start + size + 2) return Option.none()
    parts.push(data.subarray(start, start + size))
    at = start + size + 2
  }
}

/**
 * The first response in `data`, once it is complete. `ended` says the server closed the
 * connection (a body without a length then ends there). A response to `HEAD` has no body.
 */
export const parse = (data: Buffer, ended: boolean, head: boolean): Option.Option<Omit<RawReply, "ms">> => {
  const end = data.indexOf(headerEnd)
  if (end === -1) return Option.none()
  const [statusLine = "", ...lines] = data.subarray(0, end).toString("latin1").split("\r\n")
  const status = Number(statusLine.split(" ")[1])
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(":")
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  const rest = data.subarray(end + headerEnd.length)
  // 1xx responses (100 Continue) precede the real one.
  if (status >= 100 && status < 200) return parse(rest, ended, head)
  if (head || status === 204 || status === 304) return Option.some({ status, headers, body: Buffer.alloc(0) })
  if (headers["transfer-encoding"]?.toLowerCase().includes("chunked")) {
    return Option.map(dechunk(rest), (body) => ({ status, headers, body }))
  }
  const length = headers["content-length"]
  if (length !== undefined) {
    const size = Number(length)
    return rest.length >= size
      ? Option.some({ status, headers, body: rest.subarray(0, size) })
      : Option.none()
  }
  return ended ? Option.some({ status, headers, body: rest }) : Option.none()
}

/** Options of `exchange`. */
export interface Options {
  readonly port: number
  /** Give up (and close the connection) after this many milliseconds. */
  readonly timeoutMs: number
  /** True for a `HEAD` request: its response has no body. */
  readonly head?: boolean | undefined
  /** Wait for the server to close the connection after its response (`ms` is then when it closed). */
  readonly awaitClose?: boolean | undefined
}

/**
 * Connects to `127.0.0.1:port`, runs `write` (which writes the request, at its own pace), and
 * waits for the first complete response (and with `awaitClose` for the connection to close), the
 * server closing the connection, or the timeout. The
 * connection is closed and the writer interrupted afterwards.
 */
export const exchange = (
  options: Options,
  write: (socket: Net.Socket) => Effect.Effect<void>
): Effect.Effect<Outcome> =>
  Effect.scoped(
    Effect.gen(function* () {
      const chunks: Array<Buffer> = []
      let ended = false
      let wake = () => {}
      const socket = yield* Effect.acquireRelease(
        Effect.sync(() => {
          const socket = Net.connect({ host: "127.0.0.1", port: options.port, noDelay: true })
          socket.on("data", (chunk: Buffer) => {
            chunks.push(chunk)
            wake()
          })
          socket.once("close", () => {
            ended = true
            wake()
          })
          // A reset after the response (or instead of one) ends the exchange like a close.
          socket.on("error", () => undefined)
          return socket
        }),
        (socket) => Effect.sync(() => socket.destroy())
      )
      yield* Effect.async<void>((resume) => {
        socket.once("connect", () => resume(Effect.void))
        socket.once("close", () => resume(Effect.void))
      })
      const started = performance.now()
      yield* Effect.forkScoped(write(socket))
      return yield* Effect.async<Outcome>((resume) => {
        let timer: NodeJS.Timeout | undefined
        const settle = (outcome: Outcome) => {
          wake = () => {}
          clearTimeout(timer)
          resume(Effect.succeed(outcome))
        }
        wake = () => {
          const received = Buffer.concat(chunks)
          const reply = parse(received, ended, options.head === true)
          const ms = performance.now() - started
          if (Option.isSome(reply) && (ended || options.awaitClose !== true)) {
            settle({ _tag: "Reply", reply: { ...reply.value, ms } })
          } else if (ended) settle({ _tag: "Closed", ms, received })
        }
        timer = setTimeout(
          () =>
            settle({ _tag: "TimedOut", ms: performance.now() - started, received: Buffer.concat(chunks) }),
          options.timeoutMs
        )
        wake()
        return Effect.sync(() => {
          wake = () => {}
          clearTimeout(timer)
        })
      })
    })
  )

/** Writes `bytes` and waits until they are handed to the kernel (never fails: a closed socket drops them). */
export const write = (socket: Net.Socket, bytes: string | Uint8Array): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (socket.destroyed || !socket.writable) return resume(Effect.void)
    socket.write(bytes, () => resume(Effect.void))
  })

/** One request written at once. */
export const send = (options: Options, request: Uint8Array | string): Effect.Effect<Outcome> =>
  exchange(options, (socket) => write(socket, request))

/** Writes `text` one byte at a time, `everyMs` apart (a slow-loris client), until done or interrupted. */
export const trickle = (socket: Net.Socket, text: string, everyMs: number): Effect.Effect<void> =>
  Effect.forEach(
    Buffer.from(text, "latin1"),
    (byte) => Effect.zipRight(write(socket, Uint8Array.of(byte)), Effect.sleep(Duration.millis(everyMs))),
    { discard: true }
  )

/** A header line's name and value; each character of a value is written as one byte (latin1). */
export type Header = readonly [string, string]

/** The request line `head`, `headers` and `body` as the bytes of one request (no header is added). */
export const request = (head: string, headers: ReadonlyArray<Header>, body?: Uint8Array): Buffer =>
  Buffer.concat([
    Buffer.from(
      `${head}\r\n${headers.map(([name, value]) => `${name}: ${value}\r\n`).join("")}\r\n`,
      "latin1"
    ),
    ...(body === undefined ? [] : [body])
  ])

/** The reply of `outcome` (fails the test with what happened instead when there is none). */
export const replyOf = (outcome: Outcome): RawReply => {
  if (outcome._tag === "Reply") return outcome.reply
  throw new Error(
    `expected a response, got ${outcome._tag} after ${Math.round(outcome.ms)} ms: ${JSON.stringify(outcome.received.toString("latin1").slice(0, 300))}`
  )
}

/** The reply's body parsed as JSON (`undefined` when it does not parse). */
export const json = (reply: RawReply): unknown => {
  try {
    return JSON.parse(reply.body.toString("utf8"))
  } catch {
    return undefined
  }
}
