/**
 * The whole HTTP server as one layer: Keel's API over the three services and one database, with
 * `/openapi.json`, Swagger UI at `/docs`, the dashboard at `/ui` (`UiAssets`), bearer auth (`KEEL_TOKEN`), the body limit, request
 * logging, and a graceful shutdown. Building the layer starts listening and logs where, and on
 * which database (redacted); releasing it (SIGTERM/SIGINT through `NodeRuntime.runMain`) stops
 * accepting connections, lets the requests in flight finish within `KEEL_SHUTDOWN_GRACE`, then
 * flushes the cursors and closes the database (the service layers' own releases).
 *
 * Request pipeline, outermost first: in-flight tracking and logging (`Observe`), final headers
 * (`Connection: close` while stopping, `Retry-After` on a 503), unexpected failures → 500
 * (`HttpError.render`), auth (`Auth`), the API's typed error encoding, the body limit (`Body`),
 * `send` answered before the router when it can be (`FastSend`, not with tracing), the router. The
 * port is bound only once all of this is built (see `makeNodeServer`).
 */
import type * as Http from "node:http"
import type { HttpApp } from "@effect/platform"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiSwagger from "@effect/platform/HttpApiSwagger"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import type { ServeError } from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as Queue from "@keel/queue/Queue"
import type { Database } from "@keel/sql"
import * as Telemetry from "@keel/sql/Telemetry"
import type { Redacted } from "effect"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as ConfigError from "effect/ConfigError"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as HashSet from "effect/HashSet"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import { KeelApi } from "./Api.js"
import * as Auth from "./Auth.js"
import * as Body from "./Body.js"
import * as DepthHistory from "./DepthHistory.js"
import * as FastSend from "./FastSend.js"
import * as HttpError from "./HttpError.js"
import * as Cursors from "./handlers/Cursors.js"
import * as Dashboard from "./handlers/Dashboard.js"
import * as Events from "./handlers/Events.js"
import * as Queues from "./handlers/Queues.js"
import * as Reservations from "./handlers/Reservations.js"
import * as Schedules from "./handlers/Schedules.js"
import * as System from "./handlers/System.js"
import * as Keel from "./Keel.js"
import * as Lifecycle from "./Lifecycle.js"
import * as Log from "./Log.js"
import * as Observe from "./Observe.js"
import * as ServerConfig from "./ServerConfig.js"
import * as Transport from "./Transport.js"
import * as UiAssets from "./UiAssets.js"

/** The URL a client reaches the server at, from the address it bound. */
export const urlOf = (address: HttpServer.Address): string => {
  if (address._tag === "UnixAddress") return `http+unix://${encodeURIComponent(address.path)}`
  const host = address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname
  return `http://${host}:${address.port}`
}

/** The longest path parameter the router accepts, encoded (find-my-way's default is 100). */
export const maxPathParameter = 4096

/**
 * Headers every response gets at the end of the pipeline: `Connection: close` while the server
 * stops (clients do not reuse the connection), `Retry-After: 1` on a 503 (the database is
 * unavailable or the server is not serving: a client should try again shortly, not give up), and
 * `Connection: keep-alive` on an answer given before the request's body has arrived in full (a
 * route that reads no body, such as a 404 or an `OPTIONS`, answered while a large body is still
 * coming): node then reads and discards the rest instead of closing with unread data, which resets
 * the connection and can destroy the answer before the client reads it (see `Body.answerEarly`).
 */
const finalHeaders =
  (lifecycle: Lifecycle.Service) =>
  <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
    Effect.flatMap(app, (response) =>
      Effect.zipWith(lifecycle.stopping, HttpServerRequest.HttpServerRequest, (stopping, request) => {
        const retry =
          response.status === 503 && response.headers["retry-after"] === undefined
            ? HttpServerResponse.setHeader(response, "retry-after", "1")
            : response
        if (stopping) return HttpServerResponse.setHeader(retry, "connection", "close")
        return NodeHttpServerRequest.toIncomingMessage(request).complete
          ? retry
          : HttpServerResponse.setHeader(retry, "connection", "keep-alive")
      })
    )

/**
 * The node server, with a listener that answers 503 + `Retry-After: 1` (and closes the connection)
 * to every request while no API handler is attached: between `listen` and `serve`, and after
 * `serve`'s release on connections still open. Node calls every `request` listener; this one stays
 * silent whenever another (the API's) is attached, so no request is answered twice and none is
 * left without an answer. Clients too slow to send a request within `timeouts` are answered 408
 * and disconnected, and what is not HTTP gets a JSON error (`Transport`).
 */
export const makeNodeServer = (timeouts: Transport.Timeouts = ServerConfig.defaultTimeouts): Http.Server => {
  const server = Transport.makeServer(timeouts, (request, response) => {
    if (server.listenerCount("request") > 1) return
    request.resume()
    response.writeHead(503, { "content-type": "application/json", "retry-after": "1", connection: "close" })
    // Listening and not serving yet: starting. No longer listening: stopping.
    response.end(JSON.stringify(HttpError.notServingBody(server.listening ? "starting" : "stopping")))
  })
  return server
}

/**
 * Stops the server: no new connections (idle keep-alive ones close), the requests in flight get
 * `grace` to finish, then every connection left is closed.
 */
const shutdown = (node: Http.Server, lifecycle: Lifecycle.Service, grace: Duration.Duration) =>
  Effect.gen(function* () {
    const inFlight = yield* lifecycle.inFlight
    yield* Effect.logInfo("Keel stopping: no new connections; waiting for requests in flight").pipe(
      Effect.annotateLogs({ inFlight, grace: Duration.format(grace) })
    )
    yield* Effect.sync(() => node.close())
    const left = yield* lifecycle.drain(grace)
    if (left === 0) {
      yield* Effect.sync(() => node.closeIdleConnections())
    } else {
      yield* Effect.logWarning(
        "requests still running after the grace period; closing their connections"
      ).pipe(Effect.annotateLogs({ requests: left }))
      yield* Effect.sync(() => node.closeAllConnections())
    }
    yield* Effect.logInfo("Keel stopped serving; flushing cursors and closing the database")
  })

/**
 * Serves the API on the `HttpServer` in context and logs where; its release is the graceful stop.
 * With `tracing`, each request is a span (`@effect/platform`'s `http.server METHOD`, with its
 * `http.route`), continuing the trace of an incoming `traceparent` header.
 */
const serve = (
  node: Http.Server,
  config: ServerConfig.ServerConfig,
  dsn: Redacted.Redacted<string>,
  tracing: boolean
) =>
  Layer.scopedDiscard(
    Effect.gen(function* () {
      const server = yield* HttpServer.HttpServer
      const lifecycle = yield* Lifecycle.Lifecycle
      // Path parameters carry peer names (up to 256 characters, percent-encoded up to 12 bytes each).
      const api = yield* HttpRouter.withRouterConfig(HttpApiBuilder.httpApp, {
        maxParamLength: maxPathParameter
      })
      const app = finalHeaders(lifecycle)(HttpError.render(Auth.middleware(config.token)(api)))
      yield* server.serve(app, Observe.middleware(lifecycle))
      // Added after `serve`, so it runs before `serve`'s own release detaches the handler: requests
      // arriving on open connections while the server drains are still answered.
      yield* Effect.addFinalizer(() => shutdown(node, lifecycle, config.shutdownGrace))
      yield* Effect.logInfo(`Keel listening on ${urlOf(server.address)} (db: ${Keel.describe(dsn)})`).pipe(
        Effect.annotateLogs({
          url: urlOf(server.address),
          database: Keel.describe(dsn),
          auth: config.token._tag === "Some" ? "bearer" : "off",
          docs: `${urlOf(server.address)}/docs`
        })
      )
    })
  ).pipe(
    Layer.provide([HttpApiBuilder.Router.Live, HttpApiBuilder.Middleware.layer]),
    // Without tracing, no span per request: nothing would export it, and building one (with its
    // ten attributes) cost ~20 µs of a ~250 µs request.
    HttpMiddleware.withTracerDisabledWhen(tracing ? () => false : () => true)
  )

/**
 * `layer` built and run with the logger the configuration asks for (replacing the default and the
 * pretty logger `runMain` installs), at its minimum level. Request fibers inherit both.
 */
export const withLogging =
  (config: ServerConfig.ServerConfig) =>
  <A, E, R>(layer: Layer.Layer<A, E, R>): Layer.Layer<A, E, R> => {
    const logger = Log.batched(Log.formatter(config.logFormat))
    return layer.pipe(
      Layer.locallyWith(FiberRef.currentLoggers, (loggers) =>
        HashSet.add(
          HashSet.filter(
            loggers,
            (current) => current !== Logger.defaultLogger && current !== Logger.prettyLoggerDefault
          ),
          logger
        )
      ),
      Layer.locally(FiberRef.currentMinimumLogLevel, config.logLevel)
    )
  }

/** Every way the server can fail to start. */
export type StartError =
  | Database.OpenError
  | Layer.Layer.Error<typeof Keel.services>
  | ServeError
  | ConfigError.ConfigError

/** The server with `config`, over the database at `dsn`. Building it listens; releasing it stops. */
export const layerWith = (
  config: ServerConfig.ServerConfig,
  dsn: Redacted.Redacted<string>
): Layer.Layer<never, StartError> =>
  Layer.unwrapEffect(
    Effect.map(Telemetry.enabled, (tracing) => {
      const node = makeNodeServer({ headers: config.headersTimeout, request: config.requestTimeout })
      const services = Layer.provideMerge(
        DepthHistory.layerConfig,
        Layer.provideMerge(Keel.services, Keel.database(dsn))
      )
      const groups = Layer.mergeAll(
        Queues.layer,
        Reservations.layer,
        Cursors.layer,
        Schedules.layer,
        Events.layer,
        System.layer,
        Dashboard.layer
      )
      const api = HttpApiBuilder.api(KeelApi).pipe(Layer.provide(groups))
      const routes = Layer.mergeAll(
        HttpApiBuilder.middlewareOpenApi({ path: "/openapi.json" }),
        HttpApiSwagger.layer({ path: "/docs" }),
        UiAssets.layer({ token: Option.isSome(config.token) }),
        HttpApiBuilder.middleware(
          tracing
            ? Effect.succeed(Body.limit(config.maxBodyBytes))
            : Effect.map(
                Queue.Queues,
                (queue) => (app: HttpApp.Default) =>
                  Body.limit(config.maxBodyBytes)(FastSend.middleware(queue)(app))
              )
        )
      ).pipe(Layer.provideMerge(api))
      // Listening comes last: the database is open and migrated and the routes are built before
      // the port accepts a connection, so a client of a server still starting is refused at once
      // (ECONNREFUSED) instead of being held; the few steps between listen and serve answer 503.
      return serve(node, config, dsn, tracing).pipe(
        Layer.provide(NodeHttpServer.layer(() => node, { host: config.host, port: config.port })),
        Layer.provide(routes),
        Layer.provide(Lifecycle.layer),
        Layer.provide(services),
        withLogging(config)
      )
    })
  )

/**
 * One line per problem of a `ConfigError`, each naming its variable (`KEEL_PORT: Expected an
 * integer value but received "abc"`). Values of secrets never appear: `Config.redacted` keeps them
 * out of its messages, and the server's own validations state the rule, not the value.
 */
export const describeConfigError = (error: ConfigError.ConfigError): ReadonlyArray<string> => {
  switch (error._op) {
    case "And":
    case "Or":
      return [...describeConfigError(error.left), ...describeConfigError(error.right)]
    default: {
      const name = error.path.join(".")
      return [name === "" || error.message.includes(name) ? error.message : `${name}: ${error.message}`]
    }
  }
}

const messageOf = (value: unknown): string =>
  Predicate.hasProperty(value, "message") && String(value.message) !== "" ? String(value.message) : ""

/** The one-line explanation of an expected failure. */
const explain = (error: unknown): string => {
  if (ConfigError.isConfigError(error)) return describeConfigError(error).join("; ")
  // The platform's ServeError carries no message of its own: the listen error is its cause.
  if (Predicate.isTagged(error, "ServeError") && Predicate.hasProperty(error, "cause")) {
    return `cannot listen: ${messageOf(error.cause) || String(error.cause)}`
  }
  return messageOf(error) || (Predicate.hasProperty(error, "_tag") ? String(error._tag) : String(error))
}

/**
 * Writes why the server failed to stderr: one line with the message of each expected error (a
 * `ConfigError` names its variable, a database error carries no secret), the full cause only for
 * defects (interruptions beside a failure are the other services' start being cancelled). Nothing
 * for a plain interruption (a signal).
 */
export const reportFailure = (cause: Cause.Cause<unknown>): Effect.Effect<void> => {
  if (Cause.isInterruptedOnly(cause)) return Effect.void
  const failures = Chunk.toReadonlyArray(Cause.failures(cause))
  // Services start in parallel: when one fails, the others are interrupted, and those
  // interruptions sit beside the failure in the cause. Only a defect is unexpected.
  if (failures.length > 0 && Chunk.isEmpty(Cause.defects(cause))) {
    const lines = [...new Set(failures.map(explain))]
    return Console.error(`Keel stopped: ${lines.join("; ")}`)
  }
  return Console.error(`Keel stopped: unexpected failure\n${Cause.pretty(cause)}`)
}

/** The server over the database at `dsn`, configured from the environment (`ServerConfig`). */
export const layer = (dsn: Redacted.Redacted<string>): Layer.Layer<never, StartError> =>
  Layer.unwrapEffect(Effect.map(ServerConfig.config, (config) => layerWith(config, dsn)))

/**
 * The server configured entirely from the environment: the DSN from `dsn` when given, else
 * `KEEL_DB`, else the default SQLite file (`Keel.resolveDsn`). What `keel serve` and `main.ts` run.
 */
export const layerConfig = (
  dsn: Option.Option<Redacted.Redacted<string>> = Option.none()
): Layer.Layer<never, StartError> => Layer.unwrapEffect(Effect.map(Keel.resolveDsn(dsn), layer))
