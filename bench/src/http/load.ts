/**
 * The HTTP workloads, driven by autocannon from this process over keep-alive connections, each
 * connection sending its next request as soon as the last response arrived (no pipelining):
 *
 * - `send`: `POST /queues/bench/messages` with the queue bench's small JSON job; latency per request.
 * - `readAck`: a pair per connection, in turn: `POST /queues/bench/read` (`qty` 1), then
 *   `POST /queues/bench/messages/{id}/archive` with the lease it returned — autocannon's request
 *   sequence (`onResponse` keeps the lease in the connection's context, `setupRequest` of the
 *   second request builds its path and body from it; an empty read starts the pair over and is
 *   counted). Latency per pair, from writing the read to the archive's response.
 *
 * autocannon records latencies in whole milliseconds; the percentiles here come from its
 * `response` events (fractional milliseconds) instead.
 */
import autocannon from "autocannon"
import { payload, queueName } from "../queue/workload.js"

/** What one run measured. */
export interface Measured {
  /** Operations completed (2xx sends; pairs whose archive succeeded). */
  readonly operations: number
  readonly seconds: number
  /** Every response, 2xx or not. */
  readonly requests: number
  /** Latency of each operation, in milliseconds. */
  readonly samples: ReadonlyArray<number>
  readonly non2xx: number
  /** Connection errors, timeouts included. */
  readonly errors: number
  readonly timeouts: number
  /** Reads that found no message (read+ack only). */
  readonly emptyReads: number
}

/** How hard to drive the server. */
export interface Load {
  readonly connections: number
  readonly seconds: number
}

const json = { "content-type": "application/json" }

type Request = autocannon.Request

/** Runs autocannon with `options`; `onSample` receives each response's latency. */
const run = (
  options: autocannon.Options,
  onResponse: (status: number, ms: number) => void
): Promise<{ readonly result: autocannon.Result; readonly seconds: number }> =>
  new Promise((resolve, reject) => {
    const started = performance.now()
    const instance = autocannon(options, (error: unknown, result) => {
      if (error) reject(error instanceof Error ? error : new Error(String(error)))
      else resolve({ result, seconds: (performance.now() - started) / 1000 })
    })
    instance.on("response", (_client, status, _bytes, ms) => onResponse(status, ms))
  })

const base = (url: string, load: Load): autocannon.Options => ({
  url,
  connections: load.connections,
  duration: load.seconds,
  pipelining: 1,
  headers: json
})

/** What a workload measured, from autocannon's result and the workload's own samples. */
const measured = (
  result: autocannon.Result,
  seconds: number,
  samples: ReadonlyArray<number>,
  emptyReads: number
): Measured => ({
  operations: samples.length,
  seconds,
  requests: result.requests.total,
  samples,
  non2xx: result.non2xx,
  errors: result.errors,
  timeouts: result.timeouts,
  emptyReads
})

/** `POST /queues/bench/messages` for `load.seconds`. */
export const send = async (url: string, load: Load): Promise<Measured> => {
  const samples: Array<number> = []
  const { result, seconds } = await run(
    {
      ...base(`${url}/queues/${queueName}/messages`, load),
      method: "POST",
      body: JSON.stringify({ payload: payload(1) })
    },
    (status, ms) => {
      if (status >= 200 && status < 300) samples.push(ms)
    }
  )
  return measured(result, seconds, samples, 0)
}

/** The lease a connection holds between its read and its archive, and when its read was written. */
interface PairContext {
  started?: number
  id?: number
  lease?: string
}

const leaseOf = (body: string): { readonly id: number; readonly lease: string } | undefined => {
  const parsed = JSON.parse(body) as { readonly messages?: ReadonlyArray<{ id: number; lease: string }> }
  return parsed.messages?.[0]
}

/** Read one message and archive it, in turn, on every connection, for `load.seconds`. */
export const readAck = async (url: string, load: Load): Promise<Measured> => {
  const samples: Array<number> = []
  let emptyReads = 0
  const read: Request = {
    method: "POST",
    path: `/queues/${queueName}/read`,
    body: JSON.stringify({ qty: 1 }),
    setupRequest: (request, context) => {
      ;(context as PairContext).started = performance.now()
      return request
    },
    onResponse: (status, body, context) => {
      const pair = context as PairContext
      const leased = status === 200 ? leaseOf(body) : undefined
      if (leased === undefined) {
        if (status === 200) emptyReads++
        return
      }
      pair.id = leased.id
      pair.lease = leased.lease
    }
  }
  const archive: Request = {
    method: "POST",
    // A falsy request starts the sequence over: the read found nothing (or failed).
    setupRequest: (request, context) => {
      const pair = context as PairContext
      if (pair.id === undefined) return undefined as unknown as Request
      return {
        ...request,
        path: `/queues/${queueName}/messages/${pair.id}/archive`,
        body: JSON.stringify({ lease: pair.lease })
      }
    },
    onResponse: (status, _body, context) => {
      const started = (context as PairContext).started
      if (status === 204 && started !== undefined) samples.push(performance.now() - started)
    }
  }
  const { result, seconds } = await run({ ...base(url, load), requests: [read, archive] }, () => undefined)
  return measured(result, seconds, samples, emptyReads)
}

const post = async (url: string, body: unknown): Promise<unknown> => {
  const response = await fetch(url, { method: "POST", headers: json, body: JSON.stringify(body) })
  const text = await response.text()
  if (!response.ok) throw new Error(`POST ${url}: ${response.status} ${text}`)
  return text === "" ? undefined : JSON.parse(text)
}

/** Creates the benchmark queue. */
export const createQueue = (url: string): Promise<unknown> => post(`${url}/queues`, { name: queueName })

/** Messages waiting in the benchmark queue (visible now). */
export const depth = async (url: string): Promise<number> => {
  const response = await fetch(`${url}/queues/${queueName}/metrics`)
  const metrics = (await response.json()) as { readonly depth: number }
  return metrics.depth
}

/** Sends messages in batches of 1,000 until at least `wanted` are waiting. */
export const fill = async (url: string, wanted: number): Promise<void> => {
  let missing = wanted - (await depth(url))
  while (missing > 0) {
    const count = Math.min(1000, missing)
    await post(`${url}/queues/${queueName}/messages/batch`, {
      messages: Array.from({ length: count }, (_, i) => ({ payload: payload(i) }))
    })
    missing -= count
  }
}
