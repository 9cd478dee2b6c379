/**
 * The server as a real child process for end-to-end tests: `src/main.ts` (bundled by the testkit)
 * on a fresh database, on a random port (`KEEL_PORT=0`), JSON logs; the port is read from its
 * "listening" log line. Requests go over real HTTP with `fetch` or `node:http`.
 */
import { writeFileSync } from "node:fs"
import * as Http from "node:http"
import * as Net from "node:net"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Processes, TestDatabase } from "@keel/testkit"
import { Context, Duration, Effect, Layer, Option, type Scope } from "effect"

/** The server's entry point. */
export const mainScript = fileURLToPath(new URL("../../src/main.ts", import.meta.url))

/** The backends the end-to-end suites run on: SQLite and PostgreSQL (narrowed by `KEEL_TEST_BACKENDS`). */
export const kinds: ReadonlyArray<TestDatabase.Kind> = TestDatabase.kinds.filter(
  (kind) => kind === "sqlite" || kind === "postgres"
)

/** A token the auth tests configure. */
export const token = "keel-test-token-0123456789"

/** One log line of the server (Effect's JSON logger). */
export interface LogLine {
  readonly message: unknown
  readonly logLevel: string
  readonly annotations: Readonly<Record<string, unknown>>
}

const isLogLine = (value: unknown): value is LogLine =>
  typeof value === "object" && value !== null && "message" in value && "annotations" in value

/** Every complete JSON log line written so far. */
export const logLines = (output: string): ReadonlyArray<LogLine> =>
  output.split("\n").flatMap((line) => {
    if (!line.startsWith("{")) return []
    try {
      const parsed: unknown = JSON.parse(line)
      return isLogLine(parsed) ? [parsed] : []
    } catch {
      return []
    }
  })

/** A running server. */
export interface Running {
  readonly url: string
  readonly port: number
  readonly child: Processes.Child
  /** Its database (full DSN) and a temp directory that lives as long as it. */
  readonly database: TestDatabase.Info
}

/** Waits for the "listening" line; fails with the child's output if it exits or takes too long. */
const listening = (child: Processes.Child): Effect.Effect<string> =>
  Effect.gen(function* () {
    const deadline = Date.now() + 60_000
    while (Date.now() < deadline) {
      const found = logLines(child.stdout()).find(
        (line) => typeof line.message === "string" && line.message.startsWith("Keel listening on")
      )
      const url = found?.annotations.url
      if (typeof url === "string") return url
      const ended = yield* Effect.timeoutOption(child.exited, Duration.millis(25))
      if (Option.isSome(ended)) {
        return yield* Effect.dieMessage(
          `the server exited (${ended.value.code}) before listening:\n${ended.value.stdout}\n${ended.value.stderr}`
        )
      }
    }
    return yield* Effect.dieMessage(
      `the server did not listen within 60 s:\n${child.stdout()}\n${child.stderr()}`
    )
  })

/** The ports the reservation tests allocate from (far from the 5000–7000 default other suites use). */
export const reservationRange = { min: 27_000, max: 27_999 } as const

/** Starts the server on `database` with extra environment; the scope kills it if it still runs. */
export const start = (
  database: TestDatabase.Info,
  env: Readonly<Record<string, string>> = {}
): Effect.Effect<Running, never, Scope.Scope> =>
  Effect.gen(function* () {
    const reservationConfig = join(database.dir, "reservation.json")
    yield* Effect.sync(() => writeFileSync(reservationConfig, JSON.stringify({ range: reservationRange })))
    const child = yield* Processes.spawn({
      script: mainScript,
      env: {
        KEEL_DB: database.dsn,
        KEEL_HOST: "127.0.0.1",
        KEEL_PORT: "0",
        KEEL_LOG_FORMAT: "json",
        // Never the developer's own ~/.local/share/keel, even if KEEL_DB were dropped.
        XDG_DATA_HOME: database.dir,
        KEEL_RESERVATION_CONFIG: reservationConfig,
        ...env
      }
    })
    const url = yield* listening(child)
    return { url, port: Number(new URL(url).port), child, database }
  })

/** The server of a test layer. */
export class TestServer extends Context.Tag("@keel/server/test/TestServer")<TestServer, Running>() {}

/** A fresh database of `kind` and a server on it, for one `layer(...)` block. */
export const layer = (
  kind: TestDatabase.Kind,
  env: Readonly<Record<string, string>> = {}
): Layer.Layer<TestServer> =>
  Layer.scoped(
    TestServer,
    Effect.flatMap(Effect.orDie(TestDatabase.fresh(kind)), (database) => start(database, env))
  )

/** A response, with its body parsed as JSON when it is JSON. */
export interface Reply {
  readonly status: number
  readonly headers: Headers
  readonly text: string
  readonly json: unknown
}

/** One request over real HTTP. `body` is sent as JSON unless it is a string. */
export const request = (
  server: Pick<Running, "url">,
  method: string,
  path: string,
  options: { readonly body?: unknown; readonly headers?: Readonly<Record<string, string>> } = {}
): Effect.Effect<Reply> =>
  Effect.promise(async () => {
    const body =
      options.body === undefined
        ? undefined
        : typeof options.body === "string"
          ? options.body
          : JSON.stringify(options.body)
    const response = await fetch(`${server.url}${path}`, {
      method,
      headers: { ...(body === undefined ? {} : { "content-type": "application/json" }), ...options.headers },
      body
    })
    const text = await response.text()
    let json: unknown
    try {
      json = text === "" ? undefined : JSON.parse(text)
    } catch {
      json = undefined
    }
    return { status: response.status, headers: response.headers, text, json }
  })

/** The request helpers bound to the server of the current layer. */
export const client = Effect.map(TestServer, (server) => ({
  server,
  get: (path: string, headers?: Readonly<Record<string, string>>) =>
    request(server, "GET", path, { headers }),
  post: (path: string, body?: unknown, headers?: Readonly<Record<string, string>>) =>
    request(server, "POST", path, { body: body ?? {}, headers }),
  put: (path: string, body: unknown) => request(server, "PUT", path, { body }),
  patch: (path: string, body: unknown) => request(server, "PATCH", path, { body }),
  del: (path: string) => request(server, "DELETE", path)
}))

/** A request whose body the test writes itself, in parts (a slow upload held open). */
export interface HeldRequest {
  /**
   * Completes when the server answered `100 Continue` (the request asks for it): the server has
   * parsed the headers and is handling the request.
   */
  readonly accepted: Effect.Effect<void>
  readonly write: (part: string) => Effect.Effect<void>
  readonly end: (part: string) => Effect.Effect<void>
  /** The response: status and body. */
  readonly response: Effect.Effect<{ readonly status: number; readonly text: string }, Error>
}

/**
 * Opens a request with a declared `Content-Length` and `Expect: 100-continue`, and sends only its
 * headers; the body is written by the test.
 */
export const hold = (
  server: Running,
  method: string,
  path: string,
  contentLength: number,
  headers: Readonly<Record<string, string>> = {}
): Effect.Effect<HeldRequest> =>
  Effect.sync(() => {
    const outgoing = Http.request(`${server.url}${path}`, {
      method,
      agent: false,
      headers: {
        "content-type": "application/json",
        "content-length": String(contentLength),
        expect: "100-continue",
        ...headers
      }
    })
    const accepted = new Promise<void>((resolve) => outgoing.once("continue", () => resolve()))
    const response = new Promise<{ status: number; text: string }>((resolve, reject) => {
      outgoing.on("response", (incoming) => {
        let text = ""
        incoming.setEncoding("utf8")
        incoming.on("data", (chunk: string) => {
          text += chunk
        })
        incoming.on("end", () => resolve({ status: incoming.statusCode ?? 0, text }))
        incoming.on("error", reject)
      })
      outgoing.on("error", reject)
    })
    // Observed here so a connection the server cuts is not an unhandled rejection; `response` reports it.
    response.catch(() => undefined)
    outgoing.flushHeaders()
    return {
      accepted: Effect.promise(() => accepted),
      write: (part) =>
        Effect.async<void>((resume) => {
          outgoing.write(part, () => resume(Effect.void))
        }),
      end: (part) =>
        Effect.async<void>((resume) => {
          outgoing.end(part, () => resume(Effect.void))
        }),
      response: Effect.tryPromise({
        try: () => response,
        catch: (error) => (error instanceof Error ? error : new Error(String(error)))
      })
    }
  })

/** True when a new TCP connection to `port` is refused (the server stopped accepting). */
export const refuses = (port: number): Effect.Effect<boolean> =>
  Effect.async<boolean>((resume) => {
    const socket = Net.connect({ host: "127.0.0.1", port })
    socket.once("connect", () => {
      socket.destroy()
      resume(Effect.succeed(false))
    })
    socket.once("error", (error: NodeJS.ErrnoException) => {
      socket.destroy()
      resume(Effect.succeed(error.code === "ECONNREFUSED"))
    })
  })

/** Waits until new connections to `port` are refused, for at most `within`. */
export const awaitRefusal = (port: number, within: Duration.DurationInput = Duration.seconds(30)) =>
  Effect.gen(function* () {
    const deadline = Date.now() + Duration.toMillis(within)
    while (Date.now() < deadline) {
      if (yield* refuses(port)) return true
      yield* Effect.sleep(Duration.millis(20))
    }
    return false
  })
