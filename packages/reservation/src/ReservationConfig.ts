/**
 * The registry's defaults: the range ports are handed out from, the ports never handed out, and
 * how occupancy is checked. They come from a JSON file and every request may override them.
 *
 * The file (`KEEL_RESERVATION_CONFIG` names it; every key is optional):
 *
 * ```json
 * {
 *   "range": { "min": 5000, "max": 7000 },
 *   "exclude": [5432, "6000-6010", { "min": 6379, "max": 6380 }],
 *   "occupancy": {
 *     "enabled": true, "hosts": ["127.0.0.1", "::1"], "protocols": ["tcp", "udp"], "timeoutMs": 250
 *   }
 * }
 * ```
 *
 * JSON because Node reads it without a dependency and every editor checks it; an unknown key is
 * an error (a misspelt `"rnage"` must not silently fall back to the default).
 */

import * as FileSystem from "@effect/platform/FileSystem"
import type { ConfigError } from "effect"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Occupancy from "./Occupancy.js"
import * as Port from "./Port.js"
import { InvalidConfig, type InvalidPort, type InvalidRange, InvalidRequest } from "./ReservationError.js"
import { OccupancyOverride } from "./Schemas.js"

/** How occupancy is checked before a port is handed out. */
export interface OccupancySettings {
  /** `false` skips the check. */
  readonly enabled: boolean
  /** The addresses a socket is probed on (`0.0.0.0` / `::` see every interface of their family). */
  readonly hosts: ReadonlyArray<string>
  /** The transports probed; absent: TCP and UDP, as trop (`Occupancy.allProtocols`). */
  readonly protocols?: ReadonlyArray<Occupancy.Protocol> | undefined
  /** The longest one probe may take; a probe that takes longer counts the port as occupied. */
  readonly timeout: Duration.Duration
}

/** The registry's validated defaults. */
export interface ReservationConfig {
  /** Where new ports come from. */
  readonly range: Port.PortRange
  /** Ports never handed out (except to a `force`d preferred port). */
  readonly exclude: ReadonlyArray<Port.PortRange>
  readonly occupancy: OccupancySettings
}

/** The longest occupancy probe timeout accepted, in milliseconds. */
export const maxProbeTimeoutMs = 10_000

/**
 * 5000–7000 (as `trop`), nothing excluded, occupancy probed over TCP and UDP (no `protocols`: both)
 * on 127.0.0.1 and ::1 within 250 ms.
 */
export const defaults: ReservationConfig = {
  range: Port.PortRange.make({ min: Port.Port.make(5000), max: Port.Port.make(7000) }),
  exclude: [],
  occupancy: { enabled: true, hosts: ["127.0.0.1", "::1"], timeout: Duration.millis(250) }
}

/** The shape of the config file, and of the value `Reservation.layer` accepts. */
export const ConfigInput = Schema.Struct({
  range: Schema.optional(Port.RangeInput),
  exclude: Schema.optional(Schema.Array(Port.ExclusionInput)),
  occupancy: Schema.optional(OccupancyOverride)
})

/** The shape of the config file. */
export type ConfigInput = typeof ConfigInput.Type

/**
 * `base` with `override` applied: each given field replaces the configured one. Hosts must be IP
 * addresses, at least one; protocols at least one; the timeout a whole number of milliseconds
 * from 1 to 10000.
 */
export const applyOccupancy = (
  base: OccupancySettings,
  override: OccupancyOverride | undefined,
  field: string
): Effect.Effect<OccupancySettings, InvalidRequest> =>
  Effect.gen(function* () {
    if (override === undefined) return base
    const hosts = override.hosts ?? base.hosts
    if (override.hosts !== undefined && hosts.length === 0) {
      return yield* new InvalidRequest({
        field: `${field}.hosts`,
        reason: "at least one address is needed (set enabled to false to skip the check)"
      })
    }
    const addresses = yield* Effect.forEach(hosts, Occupancy.isAddress)
    const badHost = addresses.indexOf(false)
    if (badHost >= 0) {
      return yield* new InvalidRequest({
        field: `${field}.hosts[${badHost}]`,
        reason: `${JSON.stringify(hosts[badHost])} is not an IP address`
      })
    }
    const protocols = override.protocols ?? base.protocols
    if (override.protocols !== undefined && override.protocols.length === 0) {
      return yield* new InvalidRequest({
        field: `${field}.protocols`,
        reason: "at least one of tcp and udp is needed (set enabled to false to skip the check)"
      })
    }
    const timeoutMs = override.timeoutMs
    if (
      timeoutMs !== undefined &&
      !(Number.isInteger(timeoutMs) && timeoutMs >= 1 && timeoutMs <= maxProbeTimeoutMs)
    ) {
      return yield* new InvalidRequest({
        field: `${field}.timeoutMs`,
        reason: `${timeoutMs} is not a whole number of milliseconds from 1 to ${maxProbeTimeoutMs}`
      })
    }
    return {
      enabled: override.enabled ?? base.enabled,
      hosts,
      ...(protocols === undefined ? {} : { protocols: [...new Set(protocols)] }),
      timeout: timeoutMs === undefined ? base.timeout : Duration.millis(timeoutMs)
    }
  })

/** Validates every exclusion, naming `field[i]` in the error. */
export const parseExclusions = (
  inputs: ReadonlyArray<Port.ExclusionInput>,
  field: string
): Effect.Effect<ReadonlyArray<Port.PortRange>, InvalidPort | InvalidRange> =>
  Effect.forEach(inputs, (input, index) => Port.parseExclusion(input, `${field}[${index}]`))

const reasonOf = (error: InvalidPort | InvalidRange | InvalidRequest): string => {
  switch (error._tag) {
    case "InvalidPort":
      return `${error.value} is not a port number (an integer from 1 to 65535)`
    case "InvalidRange":
      return `the range ${error.min}-${error.max} is inverted (min must not exceed max)`
    case "InvalidRequest":
      return error.reason
  }
}

/** Validates a config value on top of `defaults`; `InvalidConfig` names the first bad field. */
export const make = (input: ConfigInput, source?: string): Effect.Effect<ReservationConfig, InvalidConfig> =>
  Effect.gen(function* () {
    const range = input.range === undefined ? defaults.range : yield* Port.parseRange(input.range, "range")
    const exclude = yield* parseExclusions(input.exclude ?? [], "exclude")
    const occupancy = yield* applyOccupancy(defaults.occupancy, input.occupancy, "occupancy")
    return { range, exclude, occupancy }
  }).pipe(
    Effect.mapError(
      (error) =>
        new InvalidConfig({
          ...(source === undefined ? {} : { source }),
          field: error.field,
          reason: reasonOf(error)
        })
    )
  )

const fieldOf = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (out, key) =>
      typeof key === "number" ? `${out}[${key}]` : out === "" ? String(key) : `${out}.${String(key)}`,
    ""
  ) || "(root)"

const decodeInput = Schema.decodeUnknown(ConfigInput, { onExcessProperty: "error" })

/** Validates an already-parsed config document (e.g. a JSON value). */
export const decode = (document: unknown, source?: string): Effect.Effect<ReservationConfig, InvalidConfig> =>
  decodeInput(document).pipe(
    Effect.mapError((error) => {
      const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
      return new InvalidConfig({
        ...(source === undefined ? {} : { source }),
        field: fieldOf(issue?.path ?? []),
        reason: issue?.message ?? error.message
      })
    }),
    Effect.flatMap((input) => make(input, source))
  )

/** Parses and validates the text of a config file. Malformed JSON names the field `(file)`. */
export const parse = (text: string, source?: string): Effect.Effect<ReservationConfig, InvalidConfig> =>
  Effect.try({
    try: (): unknown => JSON.parse(text),
    catch: (error) =>
      new InvalidConfig({
        ...(source === undefined ? {} : { source }),
        field: "(file)",
        reason: `not valid JSON: ${error instanceof Error ? error.message : String(error)}`
      })
  }).pipe(Effect.flatMap((document) => decode(document, source)))

/** Reads, parses and validates the config file at `file`. A missing or unreadable file is `InvalidConfig`. */
export const load = (file: string): Effect.Effect<ReservationConfig, InvalidConfig, FileSystem.FileSystem> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const text = yield* Effect.mapError(
      fs.readFileString(file),
      (error) => new InvalidConfig({ source: file, field: "(file)", reason: error.message })
    )
    return yield* parse(text, file)
  })

/** The config file named by `KEEL_RESERVATION_CONFIG`, if set. */
export const fileConfig: Config.Config<Option.Option<string>> = Config.option(
  Config.string("KEEL_RESERVATION_CONFIG")
)

/** The file named by `KEEL_RESERVATION_CONFIG`, or `defaults` when it is unset. */
export const fromEnvironment: Effect.Effect<
  ReservationConfig,
  InvalidConfig | ConfigError.ConfigError,
  FileSystem.FileSystem
> = Effect.flatMap(fileConfig, Option.match({ onNone: () => Effect.succeed(defaults), onSome: load }))
