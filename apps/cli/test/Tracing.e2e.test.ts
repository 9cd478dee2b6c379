/**
 * One trace across processes, as an OTLP collector sees it: a request to `keel serve` carrying a
 * `traceparent` header, the message it sends, and a `keel queue consume` in another process whose
 * handler continues the trace and hands it to its command as `TRACEPARENT`; a `keel queue send`
 * under `TRACEPARENT` continues the caller's trace; the server's own entry point traces reservation
 * and cursor operations inside its requests. The collector is an OTLP/HTTP receiver started
 * here (JSON, `OTEL_EXPORTER_OTLP_PROTOCOL=http/json`); spans are flushed when each process exits.
 * Without an endpoint in the environment, nothing reaches it.
 */
import { randomBytes } from "node:crypto"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as TestServer from "../../server/test/support/TestServer.js"
import * as Keel from "./support/Keel.js"

/** One span as the collector decoded it, with the `service.name` of the process that sent it. */
interface Span {
  readonly service: string
  readonly name: string
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId: string | undefined
  readonly attributes: Readonly<Record<string, unknown>>
}

interface KeyValue {
  readonly key: string
  readonly value: Readonly<Record<string, unknown>>
}

const record = (value: unknown): Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value) ? { ...value } : {}

const list = (value: unknown): ReadonlyArray<unknown> => (Array.isArray(value) ? value : [])

const text = (value: unknown): string => (typeof value === "string" ? value : "")

const attributesOf = (value: unknown): Readonly<Record<string, unknown>> =>
  Object.fromEntries(
    list(value).map((entry) => {
      const { key, value: wrapped } = record(entry) as Partial<KeyValue>
      return [text(key), Object.values(record(wrapped))[0]]
    })
  )

/** The spans of an OTLP/JSON `ExportTraceServiceRequest`. */
const spansOf = (body: unknown): ReadonlyArray<Span> =>
  list(record(body).resourceSpans).flatMap((resourceSpan) => {
    const resource = record(resourceSpan)
    const service = text(attributesOf(record(resource.resource).attributes)["service.name"])
    return list(resource.scopeSpans).flatMap((scopeSpan) =>
      list(record(scopeSpan).spans).map((raw): Span => {
        const span = record(raw)
        const parent = text(span.parentSpanId)
        return {
          service,
          name: text(span.name),
          traceId: text(span.traceId),
          spanId: text(span.spanId),
          parentSpanId: parent === "" ? undefined : parent,
          attributes: attributesOf(span.attributes)
        }
      })
    )
  })

/** An OTLP/HTTP traces receiver on 127.0.0.1: every span POSTed to `/v1/traces` as JSON. */
const collector = async () => {
  const spans: Array<Span> = []
  const requests: Array<{ readonly path: string; readonly contentType: string }> = []
  const server = Http.createServer((request, response) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => {
      const contentType = request.headers["content-type"] ?? ""
      requests.push({ path: request.url ?? "", contentType })
      if (request.method !== "POST" || request.url !== "/v1/traces" || !contentType.includes("json")) {
        response.writeHead(415).end()
        return
      }
      spans.push(...spansOf(JSON.parse(Buffer.concat(chunks).toString("utf8"))))
      response.writeHead(200, { "content-type": "application/json" }).end("{}")
    })
  })
  await new Promise<void>((listening) => server.listen(0, "127.0.0.1", listening))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    requests,
    close: () => new Promise<void>((closed) => server.close(() => closed()))
  }
}

const hex = (bytes: number) => randomBytes(bytes).toString("hex")

/** The environment that exports a process's spans to `url` as `service`. */
const otel = (url: string, service: string) => ({
  OTEL_EXPORTER_OTLP_ENDPOINT: url,
  OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
  OTEL_SERVICE_NAME: service
})

/** The `TRACEPARENT=…` lines the consumer's command printed. */
const printedTraceparents = (stdout: string): ReadonlyArray<string> =>
  [...stdout.matchAll(/^TRACEPARENT=(.*)$/gm)].map((match) => match[1] ?? "")

describe("tracing across processes", () => {
  let receiver: Awaited<ReturnType<typeof collector>>
  let database: Awaited<ReturnType<typeof Keel.freshDatabase>>
  let env: Record<string, string>

  beforeAll(async () => {
    const [, fresh, started] = await Promise.all([
      Keel.ensureBuilt(),
      Keel.freshDatabase("sqlite"),
      collector()
    ])
    database = fresh
    receiver = started
    env = { KEEL_DB: database.dsn, XDG_DATA_HOME: database.dir, KEEL_SCHEDULER: "false" }
    Keel.ok(await Keel.keel(["queue", "create", "traced", "--quiet"], { env }))
  })

  afterAll(async () => {
    await receiver?.close()
    await database?.close()
  })

  it("an HTTP send with a traceparent and a consumer in another process make one trace; a CLI send under TRACEPARENT continues its caller's", async () => {
    const httpTrace = hex(16)
    const httpParent = hex(8)
    const cliTrace = hex(16)
    const cliParent = hex(8)

    const server = Keel.start(["serve", "--host", "127.0.0.1", "--port", "0"], {
      env: { ...env, ...otel(receiver.url, "keel-server"), KEEL_LOG_FORMAT: "json" }
    })
    let url = ""
    await Keel.eventually(
      () => {
        url = /Keel listening on (http:\/\/[0-9.:]+)/.exec(server.stdout())?.[1] ?? ""
        return url !== "" || server.child.exitCode !== null
      },
      30_000,
      "keel serve to listen"
    )
    expect(url, server.stdout() + server.stderr()).not.toBe("")
    const sent = await fetch(`${url}/queues/traced/messages`, {
      method: "POST",
      headers: { "content-type": "application/json", traceparent: `00-${httpTrace}-${httpParent}-01` },
      body: JSON.stringify({ payload: { via: "http" } })
    })
    expect(sent.status, await sent.clone().text()).toBe(201)
    server.child.kill("SIGTERM")
    const stopped = await server.exited
    expect(stopped.code, stopped.stderr).toBe(0)

    Keel.ok(
      await Keel.keel(["queue", "send", "traced", '{"via":"cli"}', "--quiet"], {
        env: { ...env, ...otel(receiver.url, "keel-cli"), TRACEPARENT: `00-${cliTrace}-${cliParent}-01` }
      })
    )

    const worker = await Keel.keel(
      ["queue", "consume", "traced", 'echo "TRACEPARENT=$TRACEPARENT"', "--max-messages", "2"],
      { env: { ...env, ...otel(receiver.url, "keel-worker") } }
    )
    expect(worker.code, worker.stderr).toBe(0)

    const spans = receiver.spans
    expect(receiver.requests.every((request) => request.path === "/v1/traces")).toBe(true)
    const services = new Set(spans.map((span) => span.service))
    expect(services).toEqual(new Set(["keel-server", "keel-cli", "keel-worker"]))

    // The server's request span continues the header's trace, as a child of its span.
    const serverSpans = spans.filter((span) => span.service === "keel-server")
    const request = serverSpans.find(
      (span) => span.name.startsWith("http.server POST") && span.traceId === httpTrace
    )
    expect(request, JSON.stringify(serverSpans)).toMatchObject({ parentSpanId: httpParent })
    expect(request?.attributes["http.route"]).toBe("/queues/:name/messages")

    // Its log line carries the trace.
    const logged = stopped.stdout
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => record(JSON.parse(line)))
      .find((line) => text(line.message).startsWith("POST /queues/traced/messages"))
    expect(logged, stopped.stdout).toMatchObject({ traceId: httpTrace, spanId: request?.spanId })

    // The CLI's send continues TRACEPARENT.
    const cliSpans = spans.filter((span) => span.service === "keel-cli")
    expect(cliSpans.some((span) => span.traceId === cliTrace && span.parentSpanId === cliParent)).toBe(true)

    // Each handler span in the worker continues its message's trace, as a child of a span of the
    // process that sent it; its command saw that span as TRACEPARENT.
    const handles = spans.filter(
      (span) => span.service === "keel-worker" && span.name === "keel.queue.handle"
    )
    const fromHttp = handles.find((span) => span.traceId === httpTrace)
    const fromCli = handles.find((span) => span.traceId === cliTrace)
    expect(fromHttp, JSON.stringify(handles)).toBeDefined()
    expect(fromCli, JSON.stringify(handles)).toBeDefined()
    expect(serverSpans.filter((span) => span.traceId === httpTrace).map((span) => span.spanId)).toContain(
      fromHttp?.parentSpanId
    )
    expect(cliSpans.filter((span) => span.traceId === cliTrace).map((span) => span.spanId)).toContain(
      fromCli?.parentSpanId
    )
    expect([...printedTraceparents(worker.stdout)].sort()).toEqual(
      [`00-${httpTrace}-${fromHttp?.spanId}-01`, `00-${cliTrace}-${fromCli?.spanId}-01`].sort()
    )
  })

  it("the server's entry point exports its spans: reservation and cursor operations inside their requests' spans", async () => {
    const trace = hex(16)
    const parent = hex(8)
    const traceparent = `00-${trace}-${parent}-01`
    await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const server = yield* TestServer.start(database, otel(receiver.url, "keel-main"))
          const reserved = yield* TestServer.request(server, "POST", "/reservations", {
            body: { path: database.dir, tag: "traced" },
            headers: { traceparent }
          })
          expect(reserved.status, reserved.text).toBe(200)
          const set = yield* TestServer.request(server, "PUT", "/cursors/traced-peer", {
            body: { position: "42" },
            headers: { traceparent }
          })
          expect(set.status, set.text).toBe(200)
          yield* server.child.kill("SIGTERM")
          const exited = yield* server.child.exited
          expect(exited.code, exited.stderr).toBe(0)
        })
      )
    )
    const spans = receiver.spans.filter((span) => span.service === "keel-main" && span.traceId === trace)
    const requests = spans.filter(
      (span) => span.name.startsWith("http.server") && span.parentSpanId === parent
    )
    expect(requests.map((span) => span.attributes["http.route"]).sort(), JSON.stringify(spans)).toEqual([
      "/cursors/:peer",
      "/reservations"
    ])
    const ids = requests.map((span) => span.spanId)
    const reserve = spans.find((span) => span.name === "keel.reservation.reserve")
    const cursor = spans.find((span) => span.name === "keel.cursor.set")
    expect(ids, JSON.stringify(spans)).toContain(reserve?.parentSpanId)
    expect(ids, JSON.stringify(spans)).toContain(cursor?.parentSpanId)
  })

  it("without an OTLP endpoint nothing is exported and no trace is handed on, even under TRACEPARENT", async () => {
    const before = receiver.requests.length
    const trace = hex(16)
    const off = { ...env, OTEL_SERVICE_NAME: "keel-off", OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" }
    Keel.ok(
      await Keel.keel(["queue", "send", "traced", '{"via":"untraced"}', "--quiet"], {
        env: { ...off, TRACEPARENT: `00-${trace}-${hex(8)}-01` }
      })
    )
    const worker = await Keel.keel(
      ["queue", "consume", "traced", 'echo "TRACEPARENT=$TRACEPARENT"', "--max-messages", "1"],
      { env: { ...off, TRACEPARENT: "" } }
    )
    expect(worker.code, worker.stderr).toBe(0)
    expect(printedTraceparents(worker.stdout)).toEqual([""])
    await new Promise((resolve) => setTimeout(resolve, 1_500))
    expect(receiver.requests.length).toBe(before)
  })
})
