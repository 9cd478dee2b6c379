/**
 * The server's configuration, read through Effect `Config` from the environment: `KEEL_HOST`
 * (default 127.0.0.1), `KEEL_PORT` (default 7373; 0 picks a free port), `KEEL_TOKEN` (optional
 * bearer token, a secret), `KEEL_MAX_BODY_BYTES` (default 1 MiB), `KEEL_LOG_LEVEL` (default
 * info; see `Log.level`), `KEEL_LOG_FORMAT` (`logfmt`, the default, or `json`: one JSON object per
 * line), `KEEL_SHUTDOWN_GRACE` (how long in-flight requests may take after SIGTERM, default
 * 10 s), `KEEL_HEADERS_TIMEOUT` (how long a client may take to send its request headers, default
 * 10 s) and `KEEL_REQUEST_TIMEOUT` (to send its whole request, body included, default 30 s; raise
 * it with `KEEL_MAX_BODY_BYTES` for slow links). A client slower than either is answered 408 and disconnected (slow-loris defence); the
 * timeouts bound receiving a request, not answering it, so a long-poll `read` may still wait 20 s.
 * An invalid value is a `ConfigError` naming the variable.
 */

import type { Option } from "effect"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import * as Log from "./Log.js"

/** The resolved configuration. */
export interface ServerConfig {
  readonly host: string
  readonly port: number
  readonly token: Option.Option<Redacted.Redacted<string>>
  readonly maxBodyBytes: number
  readonly logLevel: LogLevel.LogLevel
  readonly logFormat: LogFormat
  readonly shutdownGrace: Duration.Duration
  readonly headersTimeout: Duration.Duration
  readonly requestTimeout: Duration.Duration
}

/** How log lines are written: `key=value` pairs, or one JSON object per line. */
export type LogFormat = Log.Format

/** The default port. */
export const defaultPort = 7373

/** How long a client may take to send its request headers, and its whole request, by default. */
export const defaultTimeouts = { headers: Duration.seconds(10), request: Duration.seconds(30) } as const

/** A timeout variable: a duration (`"30 seconds"`, `"1500 millis"`) from 1 second to 1 hour. */
const timeout = (name: string, fallback: Duration.Duration) =>
  Config.withDefault(Config.duration(name), fallback).pipe(
    Config.validate({
      message: `${name} must be a duration from 1 second to 1 hour (e.g. "30 seconds")`,
      validation: (duration) =>
        Duration.between(duration, { minimum: Duration.seconds(1), maximum: Duration.hours(1) })
    })
  )

/** Reads and validates the configuration. */
export const config: Config.Config<ServerConfig> = Config.all({
  host: Config.withDefault(Config.string("KEEL_HOST"), "127.0.0.1").pipe(
    Config.validate({ message: "KEEL_HOST must not be empty", validation: (host) => host.trim() !== "" })
  ),
  port: Config.withDefault(Config.integer("KEEL_PORT"), defaultPort).pipe(
    Config.validate({
      message: "KEEL_PORT must be an integer from 0 to 65535",
      validation: (port) => port >= 0 && port <= 65535
    })
  ),
  token: Config.option(
    Config.redacted("KEEL_TOKEN").pipe(
      Config.validate({
        message: "KEEL_TOKEN must be at least 16 characters",
        validation: (token) => Redacted.value(token).length >= 16
      })
    )
  ),
  maxBodyBytes: Config.withDefault(Config.integer("KEEL_MAX_BODY_BYTES"), 1024 * 1024).pipe(
    Config.validate({
      message: "KEEL_MAX_BODY_BYTES must be an integer from 1024 to 104857600",
      validation: (bytes) => bytes >= 1024 && bytes <= 100 * 1024 * 1024
    })
  ),
  logLevel: Config.withDefault(Log.level("KEEL_LOG_LEVEL"), LogLevel.Info),
  logFormat: Config.withDefault(Log.format("KEEL_LOG_FORMAT"), "logfmt"),
  shutdownGrace: Config.withDefault(Config.duration("KEEL_SHUTDOWN_GRACE"), Duration.seconds(10)),
  headersTimeout: timeout("KEEL_HEADERS_TIMEOUT", defaultTimeouts.headers),
  requestTimeout: timeout("KEEL_REQUEST_TIMEOUT", defaultTimeouts.request)
}).pipe(
  // Node refuses a headers timeout longer than the request timeout.
  Config.validate({
    message: "KEEL_HEADERS_TIMEOUT must not exceed KEEL_REQUEST_TIMEOUT",
    validation: (config) => Duration.lessThanOrEqualTo(config.headersTimeout, config.requestTimeout)
  })
)
