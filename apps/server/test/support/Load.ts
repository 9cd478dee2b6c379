/**
 * HTTP load for fault tests: `clients` loops in this process, each sending one message at a time
 * (`POST /queues/{queue}/messages`, payload `{ client, seq }`) to whatever server listens at the
 * URL, for as long as the load runs. Every request is timed and its outcome kept: a test then
 * checks that each acknowledged (201) send was stored exactly once and that no request hung.
 * A connection error (the server is down or was killed) is an outcome like any other; the client
 * pauses briefly and sends its next message.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Database } from "@keel/sql"
import { Effect, type Scope } from "effect"

/** How one request ended. */
export type Outcome =
  | {
      readonly _tag: "Status"
      readonly status: number
      readonly body: string
      /** The `Retry-After` header, if any. */
      readonly retryAfter: string | null
    }
  | { readonly _tag: "ConnectionError"; readonly code: string }
  | { readonly _tag: "TimedOut" }

/** One request of the load. */
export interface Attempt {
  /** `client-seq`, also the message's payload key. */
  readonly key: string
  /** When it was sent (`performance.now()`) and how long it took. */
  readonly at: number
  readonly ms: number
  readonly outcome: Outcome
}

/** A running load. */
export interface Load {
  /** Every request that has ended so far. */
  readonly attempts: () => ReadonlyArray<Attempt>
  /** Stops the clients and waits for their requests in flight. */
  readonly stop: Effect.Effect<ReadonlyArray<Attempt>>
}

/** Options of `start`. */
export interface Options {
  readonly url: string
  readonly queue: string
  readonly clients: number
  /** A request still unanswered after this is abandoned (`TimedOut`). Default 10 s. */
  readonly timeoutMs?: number | undefined
  /** Headers of every request (auth). */
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** Each client's pause after each request. Default none. */
  readonly pauseMs?: number | undefined
}

const errorCode = (error: unknown): string => {
  const cause = error instanceof Error && error.cause !== undefined ? error.cause : error
  if (typeof cause === "object" && cause !== null && "code" in cause) return String(cause.code)
  return error instanceof Error ? error.message : String(error)
}

/** One timed `POST {url}/queues/{queue}{path}` with a JSON body; its attempt under `key`. */
const post = async (
  options: Pick<Options, "url" | "queue" | "headers" | "timeoutMs">,
  key: string,
  path: string,
  body: unknown
): Promise<Attempt> => {
  const started = performance.now()
  let outcome: Outcome
  try {
    const response = await fetch(`${options.url}/queues/${options.queue}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...options.headers },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(options.timeoutMs ?? 10_000)
    })
    outcome = {
      _tag: "Status",
      status: response.status,
      body: await response.text(),
      retryAfter: response.headers.get("retry-after")
    }
  } catch (error) {
    outcome =
      error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError")
        ? { _tag: "TimedOut" }
        : { _tag: "ConnectionError", code: errorCode(error) }
  }
  return { key, at: started, ms: performance.now() - started, outcome }
}

/** Starts the load; the scope stops it. */
export const start = (options: Options): Effect.Effect<Load, never, Scope.Scope> =>
  Effect.gen(function* () {
    const attempts: Array<Attempt> = []
    let running = true
    const client = async (index: number) => {
      for (let seq = 0; running; seq++) {
        const attempt = await post(options, `${index}-${seq}`, "/messages", {
          payload: { key: `${index}-${seq}` }
        })
        attempts.push(attempt)
        const { outcome } = attempt
        const pause = outcome._tag !== "Status" || outcome.status >= 500 ? 20 : (options.pauseMs ?? 0)
        if (pause > 0) await new Promise((resolve) => setTimeout(resolve, pause))
      }
    }
    const clients = Array.from({ length: options.clients }, (_, index) => client(index))
    const stop = Effect.promise(async () => {
      running = false
      await Promise.all(clients)
      return attempts
    })
    yield* Effect.addFinalizer(() => Effect.asVoid(stop))
    return { attempts: () => attempts, stop }
  })

/** The keys of the sends the server acknowledged (201). */
export const acknowledged = (attempts: ReadonlyArray<Attempt>): ReadonlyArray<string> =>
  attempts.flatMap((attempt) =>
    attempt.outcome._tag === "Status" && attempt.outcome.status === 201 ? [attempt.key] : []
  )

/** The requests that took longer than `ms` (answered late, or abandoned). */
export const slowerThan = (attempts: ReadonlyArray<Attempt>, ms: number): ReadonlyArray<Attempt> =>
  attempts.filter((attempt) => attempt.ms > ms)

/** How many attempts ended each way (`201`, `503`, `ECONNREFUSED`, `TimedOut`, …). */
export const tally = (attempts: ReadonlyArray<Attempt>): Readonly<Record<string, number>> => {
  const counts: Record<string, number> = {}
  for (const { outcome } of attempts) {
    const name =
      outcome._tag === "Status"
        ? String(outcome.status)
        : outcome._tag === "TimedOut"
          ? "TimedOut"
          : outcome.code
    counts[name] = (counts[name] ?? 0) + 1
  }
  return counts
}

/** A running HTTP consumer. */
export interface Consumer {
  /** Messages archived so far (archive answered 204). */
  readonly archived: () => number
  /** Every read and archive request so far (`key` is `read` or `archive`). */
  readonly attempts: () => ReadonlyArray<Attempt>
  readonly stop: Effect.Effect<void>
}

/**
 * `consumers` loops that lease up to 16 messages (`read`, long-polling 1 s, 5 s leases) and
 * archive them in one request, as a worker of the HTTP API does; the scope stops them.
 */
export const consume = (
  options: Omit<Options, "clients" | "pauseMs"> & { readonly consumers: number }
): Effect.Effect<Consumer, never, Scope.Scope> =>
  Effect.gen(function* () {
    const attempts: Array<Attempt> = []
    let archived = 0
    let running = true
    const call = async (key: "read" | "archive", path: string, body: unknown) => {
      const attempt = await post(options, key, path, body)
      attempts.push(attempt)
      return attempt.outcome
    }
    const loop = async () => {
      while (running) {
        const read = await call("read", "/read", { qty: 16, wait: 1_000, visibilityTimeout: 5_000 })
        if (read._tag !== "Status" || read.status !== 200) {
          await new Promise((resolve) => setTimeout(resolve, 50))
          continue
        }
        const { messages } = JSON.parse(read.body) as {
          messages: ReadonlyArray<{ readonly id: number; readonly lease: string }>
        }
        if (messages.length === 0) continue
        const leases = messages.map(({ id, lease }) => ({ id, lease }))
        const archive = await call("archive", "/messages/archive", { leases })
        if (archive._tag === "Status" && archive.status === 204) archived += leases.length
      }
    }
    const loops = Array.from({ length: options.consumers }, loop)
    const stop = Effect.promise(async () => {
      running = false
      await Promise.all(loops)
    })
    yield* Effect.addFinalizer(() => stop)
    return { archived: () => archived, attempts: () => attempts, stop }
  })

/**
 * What the database at `dsn` holds of the load: how many times each payload key is stored (in the
 * queue, archived or dead-lettered), and how many rows are in each of those places.
 */
export const stored = (dsn: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ payload: string; place: string }>`
      SELECT payload, 'queued' AS place FROM keel_queue_messages
      UNION ALL SELECT payload, CASE WHEN dead THEN 'dead' ELSE 'archived' END FROM keel_queue_archive`
    const counts = new Map<string, number>()
    const places: Record<string, number> = {}
    for (const row of rows) {
      const { key } = JSON.parse(row.payload) as { key: string }
      counts.set(key, (counts.get(key) ?? 0) + 1)
      places[row.place] = (places[row.place] ?? 0) + 1
    }
    return { counts, places }
  }).pipe(Effect.provide(Database.layer(dsn)), Effect.scoped, Effect.orDie)
