import SwaggerParser from "@apidevtools/swagger-parser"
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, layer } from "@effect/vitest"
import { Database } from "@keel/sql"
import { TestDatabase } from "@keel/testkit"
import { Effect } from "effect"
import { body, expectError, expectOk } from "./support/Expect.js"
import * as TestServer from "./support/TestServer.js"

/** Every operation the API documents, as `METHOD path`. */
const routes = [
  "POST /queues",
  "GET /queues",
  "GET /queues/{name}",
  "PATCH /queues/{name}",
  "DELETE /queues/{name}",
  "POST /queues/{name}/purge",
  "POST /queues/{name}/messages",
  "POST /queues/{name}/messages/batch",
  "POST /queues/{name}/read",
  "POST /queues/{name}/messages/{id}/delete",
  "POST /queues/{name}/messages/delete",
  "POST /queues/{name}/messages/{id}/archive",
  "POST /queues/{name}/messages/archive",
  "GET /queues/{name}/messages/{id}",
  "PATCH /queues/{name}/messages/{id}",
  "POST /queues/{name}/messages/{id}/cancel",
  "POST /queues/{name}/messages/{id}/progress",
  "POST /queues/{name}/messages/{id}/release",
  "POST /queues/{name}/messages/release",
  "POST /queues/{name}/messages/{id}/extend",
  "POST /queues/{name}/messages/extend",
  "GET /queues/{name}/archive",
  "GET /queues/{name}/dead",
  "POST /queues/{name}/dead/requeue",
  "POST /queues/{name}/dead/delete",
  "GET /queues/{name}/messages",
  "GET /queues/{name}/metrics",
  "GET /queues/{name}/events",
  "POST /reservations",
  "GET /reservations",
  "POST /reservations/group",
  "POST /reservations/release",
  "GET /reservations/show",
  "GET /reservations/ports/{port}",
  "POST /reservations/cleanup",
  "POST /reservations/migrate",
  "GET /reservations/projects",
  "GET /reservations/ports/{port}/info",
  "GET /cursors",
  "POST /cursors/flush",
  "GET /cursors/{peer}",
  "PUT /cursors/{peer}",
  "POST /cursors/{peer}/reset",
  "DELETE /cursors/{peer}",
  "GET /cursor-tools/lag",
  "GET /cursors/{peer}/lag",
  "POST /cursor-tools/reset",
  "GET /cursor-tools/export",
  "POST /cursor-tools/import",
  "POST /cursor-tools/expire",
  "GET /schedules",
  "POST /schedules",
  "GET /schedules/{name}",
  "POST /schedules/{name}/pause",
  "POST /schedules/{name}/resume",
  "DELETE /schedules/{name}",
  "GET /events",
  "GET /dashboard/overview",
  "GET /workers",
  "GET /health",
  "GET /metrics"
]

const env = { KEEL_MAX_BODY_BYTES: "65536" }

/** One line of the Prometheus text format (0.0.4): a comment or a sample. */
const prometheusLine =
  /^(# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .*|[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\n"])*",?)*\})? (-?[0-9.e+-]+|NaN|[+-]Inf))$/

/** A body sent in chunks (no Content-Length). */
const chunked = (text: string, chunkSize = 8192): ReadableStream<Uint8Array> => {
  const bytes = new TextEncoder().encode(text)
  let offset = 0
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) return controller.close()
      controller.enqueue(bytes.subarray(offset, offset + chunkSize))
      offset += chunkSize
    }
  })
}

const send = (server: TestServer.Running, path: string, init: RequestInit & { duplex?: "half" }) =>
  Effect.promise(async () => {
    const response = await fetch(`${server.url}${path}`, init)
    const text = await response.text()
    return {
      status: response.status,
      headers: response.headers,
      text,
      json: text === "" ? undefined : JSON.parse(text)
    }
  })

for (const kind of TestServer.kinds) {
  describe(`HTTP system [${kind}]`, () => {
    layer(TestServer.layer(kind, env), { timeout: 120_000, excludeTestServices: true })((it) => {
      it.effect("/health answers 200 {status: ok} after a real query", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          expect(expectOk(yield* http.get("/health"))).toEqual({ status: "ok" })
        })
      )

      it.effect("/openapi.json is a valid OpenAPI 3.1 document listing every route with its errors", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          const document = expectOk(yield* http.get("/openapi.json"))
          yield* Effect.promise(() => SwaggerParser.validate(structuredClone(document) as never))
          expect(document.openapi).toBe("3.1.0")
          expect(document.info).toMatchObject({ title: "Keel", version: "0.1.0" })
          const paths = document.paths as Record<string, Record<string, Record<string, unknown>>>
          const documented = Object.entries(paths).flatMap(([path, operations]) =>
            Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`)
          )
          expect(documented.sort()).toEqual([...routes].sort())
          const send = paths["/queues/{name}/messages"]?.post?.responses as Record<string, unknown>
          expect(Object.keys(send).sort()).toEqual(["201", "400", "401", "404", "413", "415", "500", "503"])
          expect(JSON.stringify(send["413"])).toContain("PayloadTooLarge")
          expect(JSON.stringify(send["413"])).toContain("BodyTooLarge")
          expect(JSON.stringify(send["415"])).toContain("UnsupportedMediaType")
          const ack = paths["/queues/{name}/messages/{id}/archive"]?.post?.responses as Record<
            string,
            unknown
          >
          expect(JSON.stringify(ack["409"])).toContain("LeaseLost")
          const reserve = paths["/reservations"]?.post?.responses as Record<string, unknown>
          expect(JSON.stringify(reserve["409"])).toContain("NoPortAvailable")
          expect(paths["/health"]?.get?.security).toEqual([])
          expect(paths["/queues"]?.get?.security).toEqual([{ bearer: [] }])
        })
      )

      it.effect("/docs serves the Swagger UI page with the document and its script inline", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          const docs = yield* http.get("/docs")
          expect(docs.status).toBe(200)
          expect(docs.headers.get("content-type")).toContain("text/html")
          expect(docs.text).toContain("SwaggerUIBundle")
          expect(docs.text).toContain('"title":"Keel"')
          expect(docs.text).not.toMatch(/<script[^>]+src=/)
        })
      )

      it.effect("/metrics is Prometheus text with the queue, cursor and HTTP metrics", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          expectOk(yield* http.post("/queues", { name: "measured" }), 201)
          expectOk(yield* http.post("/queues/measured/messages", { payload: 1 }), 201)
          expectOk(yield* http.put("/cursors/measured", { position: "3" }))
          expectOk(yield* http.post("/cursors/flush"))
          const metrics = yield* http.get("/metrics")
          expect(metrics.status).toBe(200)
          expect(metrics.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8")
          const lines = metrics.text.trimEnd().split("\n")
          expect(lines.filter((line) => !prometheusLine.test(line))).toEqual([])
          expect(lines).toContain('keel_queue_depth{queue="measured"} 1')
          expect(lines).toContain('keel_queue_sent_total{queue="measured"} 1')
          expect(lines).toContain("# TYPE keel_http_requests_total counter")
          expect(lines).toContain("# TYPE keel_http_request_duration_seconds histogram")
          expect(
            lines.some((line) => line.startsWith('keel_http_requests_total{method="POST",status="201"}'))
          ).toBe(true)
          expect(lines.some((line) => line.startsWith("keel_cursor_flushes_total{"))).toBe(true)
        })
      )

      it.effect("an unknown route or method is 404 NotFound as JSON", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          const missing = expectError(yield* http.get("/nowhere?secret=1"), 404, "NotFound")
          expect(missing.message).toBe("no route for GET /nowhere")
          expectError(yield* http.del("/health"), 404, "NotFound")
        })
      )

      it.effect(
        "a body that is not JSON is 400 InvalidJson; a JSON body of the wrong shape 400 HttpApiDecodeError",
        () =>
          Effect.gen(function* () {
            const http = yield* TestServer.client
            expectError(yield* http.post("/queues", "{not json"), 400, "InvalidJson")
            const decode = expectError(
              yield* http.post("/queues", { name: ["x"] }),
              400,
              "HttpApiDecodeError"
            )
            expect(decode.issues).toEqual([expect.objectContaining({ path: ["name"] })])
          })
      )

      it.effect(
        "a body over KEEL_MAX_BODY_BYTES is 413 BodyTooLarge, declared or chunked, and the server goes on",
        () =>
          Effect.gen(function* () {
            const http = yield* TestServer.client
            expectOk(yield* http.post("/queues", { name: "big" }), 201)
            const text = JSON.stringify({ payload: "x".repeat(100_000) })
            const declared = yield* send(http.server, "/queues/big/messages", {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: text
            })
            expect(declared.status).toBe(413)
            expect(declared.json).toMatchObject({ _tag: "BodyTooLarge", limit: 65536, size: text.length })
            const streamed = yield* send(http.server, "/queues/big/messages", {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: chunked(text),
              duplex: "half"
            })
            expect(streamed.status).toBe(413)
            expect(streamed.json).toMatchObject({ _tag: "BodyTooLarge", limit: 65536 })
            const small = yield* send(http.server, "/queues/big/messages", {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: chunked(JSON.stringify({ payload: "y".repeat(30_000) }), 1000),
              duplex: "half"
            })
            expect(small.status, small.text).toBe(201)
            expect(expectOk(yield* http.get("/queues/big/metrics"))).toMatchObject({ depth: 1 })
            expect(expectOk(yield* http.get("/health"))).toEqual({ status: "ok" })
          })
      )

      it.effect("without KEEL_TOKEN no route asks for a token, whatever Authorization says", () =>
        Effect.gen(function* () {
          const http = yield* TestServer.client
          expectOk(yield* http.get("/queues", { authorization: "Bearer anything-at-all-here" }))
          expectOk(yield* http.get("/cursors"))
        })
      )
    })

    layer(TestServer.layer(kind, { KEEL_TOKEN: TestServer.token }), {
      timeout: 120_000,
      excludeTestServices: true
    })((it) => {
      it.effect(
        "with KEEL_TOKEN a missing or wrong token is a bare 401; the right one passes; /health is open",
        () =>
          Effect.gen(function* () {
            const http = yield* TestServer.client
            const wrongs: ReadonlyArray<Record<string, string>> = [
              {},
              { authorization: "Bearer wrong-token-0123456789" },
              { authorization: `Bearer ${TestServer.token}x` },
              { authorization: `Bearer ${TestServer.token.slice(0, -1)}` },
              { authorization: `Basic ${Buffer.from(`user:${TestServer.token}`).toString("base64")}` },
              { authorization: TestServer.token }
            ]
            for (const headers of wrongs) {
              for (const path of ["/queues", "/openapi.json", "/docs", "/metrics", "/nowhere"]) {
                const reply = yield* http.get(path, headers)
                expect({ path, headers, status: reply.status, body: reply.text }).toEqual({
                  path,
                  headers,
                  status: 401,
                  body: ""
                })
                expect(reply.headers.get("www-authenticate")).toBe("Bearer")
              }
            }
            const refused = yield* http.post("/queues", { name: "unauthorized" })
            expect(refused.status).toBe(401)
            const right = { authorization: `Bearer ${TestServer.token}` }
            expectOk(yield* http.get("/queues", right))
            expectOk(yield* http.get("/queues", { authorization: `bearer ${TestServer.token}` }))
            expect((yield* http.get("/openapi.json", right)).status).toBe(200)
            expect((yield* http.get("/docs", right)).status).toBe(200)
            expect(expectOk(yield* http.get("/health"))).toEqual({ status: "ok" })
            expectError(yield* http.get("/queues/unauthorized", right), 404, "QueueNotFound")
            expect(http.server.child.stdout()).not.toContain(TestServer.token)
          })
      )
    })

    if (kind === "postgres") {
      layer(TestServer.layer(kind), { timeout: 120_000, excludeTestServices: true })((it) => {
        it.effect("when the database goes away, /health is 503 Unhealthy and store errors are 503", () =>
          Effect.gen(function* () {
            const http = yield* TestServer.client
            expectOk(yield* http.post("/queues", { name: "doomed" }), 201)
            const name = new URL(http.server.database.dsn).pathname.slice(1)
            yield* dropDatabase(name)
            const health = expectError(yield* http.get("/health"), 503, "Unhealthy")
            expect(health.status).toBe("unavailable")
            const store = expectError(yield* http.get("/queues/doomed"), 503, "QueueStoreError")
            expect(body(yield* http.get("/queues/doomed")).cause).toMatchObject({ _tag: expect.any(String) })
            expect(JSON.stringify(store)).not.toContain("postgres://")
          })
        )
      })
    }
  })
}

/** Drops a database of the test server, closing its connections (the server's pool too). */
const dropDatabase = (name: string) =>
  Effect.provide(
    Effect.flatMap(SqlClient.SqlClient, (sql) => sql`DROP DATABASE IF EXISTS ${sql(name)} WITH (FORCE)`),
    Database.layer(TestDatabase.postgresAdminUrl, { maxConnections: 1 })
  ).pipe(Effect.orDie)
