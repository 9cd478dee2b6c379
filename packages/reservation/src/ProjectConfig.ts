/**
 * trop-style configuration files, in layers: the user's `config.yaml`, then the project's
 * `trop.yaml` (found in the working directory or the nearest parent that has one), then
 * `trop.local.yaml` next to it, then the environment (`TROP_PATH`, `TROP_PROJECT`, `TROP_TASK`,
 * `TROP_SKIP_TCP`…), then the caller's flags. Each file is YAML, read with the `yaml` package and
 * validated by `Document`: an unknown key, a wrong type or a bad port is `InvalidConfig` naming the
 * file and the key (`reservations.services.web.env`). Later layers override earlier ones (the
 * `occupancy_check` keys one by one, as trop); exclusions add up.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Effect from "effect/Effect"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as Occupancy from "./Occupancy.js"
import * as Port from "./Port.js"
import { InvalidConfig } from "./ReservationError.js"
import { type GroupService, validateTag } from "./Schemas.js"

/** A port number as trop writes it. */
const PortNumber = Schema.Int.pipe(Schema.between(Port.lowest, Port.highest))

/** An exclusion: `5432`, `"6000..6010"` / `"6000-6010"`, or `{ start, end }`. */
export const Exclusion = Schema.Union(
  PortNumber,
  Schema.String,
  Schema.Struct({ start: PortNumber, end: PortNumber })
)

/** An exclusion as written in a file. */
export type Exclusion = typeof Exclusion.Type

/** One service of the project's reservation group. */
export const Service = Schema.Struct({
  /** Placed with the others at base + offset. */
  offset: Schema.optional(Schema.Int.pipe(Schema.between(0, Port.highest - 1))),
  /** Taken when free (it may lie outside the range). */
  preferred: Schema.optional(PortNumber),
  /** The environment variable `autoreserve` exports (default: the tag in capitals, `-` as `_`). */
  env: Schema.optional(Schema.String)
})

/** The shape of every layer's file. Keys are trop's; every one is optional. */
export const Document = Schema.Struct({
  project: Schema.optional(Schema.String),
  ports: Schema.optional(
    Schema.Struct({
      min: PortNumber,
      max: Schema.optional(PortNumber),
      max_offset: Schema.optional(Schema.Int.pipe(Schema.between(0, Port.highest - 1)))
    })
  ),
  excluded_ports: Schema.optional(Schema.Array(Exclusion)),
  cleanup: Schema.optional(
    Schema.Struct({ expire_after_days: Schema.optional(Schema.Int.pipe(Schema.positive())) })
  ),
  occupancy_check: Schema.optional(
    Schema.Struct({
      skip: Schema.optional(Schema.Boolean),
      skip_ip4: Schema.optional(Schema.Boolean),
      skip_ip6: Schema.optional(Schema.Boolean),
      skip_tcp: Schema.optional(Schema.Boolean),
      skip_udp: Schema.optional(Schema.Boolean),
      check_all_interfaces: Schema.optional(Schema.Boolean)
    })
  ),
  reservations: Schema.optional(
    Schema.Struct({
      base: Schema.optional(PortNumber),
      services: Schema.Record({ key: Schema.String, value: Service })
    })
  ),
  disable_autoinit: Schema.optional(Schema.Boolean),
  disable_autoprune: Schema.optional(Schema.Boolean),
  disable_autoexpire: Schema.optional(Schema.Boolean),
  allow_unrelated_path: Schema.optional(Schema.Boolean),
  allow_change_project: Schema.optional(Schema.Boolean),
  allow_change_task: Schema.optional(Schema.Boolean),
  allow_change: Schema.optional(Schema.Boolean),
  maximum_lock_wait_seconds: Schema.optional(Schema.Int.pipe(Schema.nonNegative())),
  output_format: Schema.optional(Schema.Literal("table", "json", "csv", "tsv"))
})

/** One layer's file, validated. */
export type Document = typeof Document.Type

/** The project file's name, and the local override next to it. */
export const projectFile = "trop.yaml"
/** The local override of the project file (not meant to be committed). */
export const localFile = "trop.local.yaml"

const fieldOf = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (out, key) =>
      typeof key === "number" ? `${out}[${key}]` : out === "" ? String(key) : `${out}.${String(key)}`,
    ""
  ) || "(root)"

const decodeDocument = Schema.decodeUnknown(Document, { onExcessProperty: "error" })

type Yaml = typeof import("yaml")

/**
 * The `yaml` package, loaded when a file is first read (most commands find none). Bundled, its
 * CommonJS build may arrive as the namespace's `default`.
 */
export const yaml: Effect.Effect<Yaml> = Effect.promise(async () => {
  const loaded: Yaml & { readonly default?: Yaml } = await import("yaml")
  return typeof loaded.parse === "function" ? loaded : (loaded.default ?? loaded)
})

const invalid = (source: string, field: string, reason: string) =>
  new InvalidConfig({ source, field, reason })

/** Parses and validates one file's text; `source` names it in errors. An empty file is an empty document. */
export const parse = (text: string, source: string): Effect.Effect<Document, InvalidConfig> =>
  Effect.gen(function* () {
    const { parse: parseYaml } = yield* yaml
    const raw = yield* Effect.try({
      try: (): unknown => parseYaml(text, { uniqueKeys: true }),
      catch: (error) =>
        invalid(source, "(file)", `not valid YAML: ${error instanceof Error ? error.message : String(error)}`)
    })
    const document = yield* decodeDocument(raw ?? {}).pipe(
      Effect.mapError((error) => {
        const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
        return invalid(source, fieldOf(issue?.path ?? []), issue?.message ?? error.message)
      })
    )
    if (document.ports?.max !== undefined && document.ports.max_offset !== undefined) {
      return yield* invalid(source, "ports", "give max or max_offset, not both")
    }
    yield* exclusionsOf(document, source)
    if (document.reservations !== undefined) yield* groupOf(document.reservations, source)
    return document
  })

/** Reads and validates one file. */
export const load = (file: string): Effect.Effect<Document, InvalidConfig, FileSystem.FileSystem> =>
  Effect.flatMap(FileSystem.FileSystem, (fs) =>
    Effect.flatMap(
      Effect.mapError(fs.readFileString(file), (error) => invalid(file, "(file)", error.message)),
      (text) => parse(text, file)
    )
  )

/** A file of a layer, read. */
export interface Loaded {
  readonly file: string
  readonly document: Document
}

/** The files found for one working directory. */
export interface Layers {
  readonly user?: Loaded | undefined
  /** The project's `trop.yaml`; `dir` is the project's directory (where reservations are made). */
  readonly project?: (Loaded & { readonly dir: string }) | undefined
  readonly local?: Loaded | undefined
}

const loadIfExists = (file: string) =>
  Effect.flatMap(FileSystem.FileSystem, (fs) =>
    Effect.flatMap(
      Effect.orElseSucceed(fs.exists(file), () => false),
      (exists): Effect.Effect<Loaded | undefined, InvalidConfig, FileSystem.FileSystem> =>
        exists ? Effect.map(load(file), (document) => ({ file, document })) : Effect.succeed(undefined)
    )
  )

/** The nearest directory from `start` upward that holds a `trop.yaml`. */
export const findProject = (
  start: string
): Effect.Effect<string | undefined, never, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    let dir = path.resolve(start)
    for (;;) {
      if (yield* Effect.orElseSucceed(fs.exists(path.join(dir, projectFile)), () => false)) return dir
      const parent = path.dirname(dir)
      if (parent === dir) return undefined
      dir = parent
    }
  })

/** Finds and reads every layer for `start`: `userFile` (when given), the project file above `start`, its local file. */
export const discover = (
  start: string,
  userFile: string | undefined
): Effect.Effect<Layers, InvalidConfig, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function* () {
    const path = yield* Path.Path
    const user = userFile === undefined ? undefined : yield* loadIfExists(userFile)
    const dir = yield* findProject(start)
    if (dir === undefined) return { user }
    const project = yield* loadIfExists(path.join(dir, projectFile))
    const local = yield* loadIfExists(path.join(dir, localFile))
    return { user, project: project === undefined ? undefined : { ...project, dir }, local }
  })

/** The exclusions of a document as the registry takes them; a bad one names its index. */
export const exclusionsOf = (
  document: Document,
  source: string
): Effect.Effect<ReadonlyArray<Port.PortRange>, InvalidConfig> =>
  Effect.forEach(document.excluded_ports ?? [], (exclusion, index) => {
    const field = `excluded_ports[${index}]`
    const input: Port.ExclusionInput =
      typeof exclusion === "object" ? { min: exclusion.start, max: exclusion.end } : exclusion
    return Effect.mapError(Port.parseExclusion(input, field), (error) =>
      invalid(
        source,
        field,
        error._tag === "InvalidRange" ? "the range is inverted" : `${error.value} is not a port or range`
      )
    )
  })

/** A portable environment-variable name. */
const envName = /^[A-Za-z_][A-Za-z0-9_]*$/

/** The variable a service is exported as when its `env` is not given: the tag in capitals, `-` as `_`. */
export const defaultEnv = (tag: string): string => tag.toUpperCase().replaceAll("-", "_")

/** One service of a group, validated, with the variable it is exported as. */
export interface GroupEntry extends GroupService {
  readonly env: string
}

/** The project's group: every service validated, each with a unique variable name (case-insensitively). */
export const groupOf = (
  reservations: NonNullable<Document["reservations"]>,
  source: string
): Effect.Effect<
  { readonly base: number | undefined; readonly services: ReadonlyArray<GroupEntry> },
  InvalidConfig
> =>
  Effect.gen(function* () {
    const services: Array<GroupEntry> = []
    const names = new Map<string, string>()
    for (const [tag, service] of Object.entries(reservations.services)) {
      const field = `reservations.services.${tag}`
      const valid = yield* Effect.mapError(validateTag(tag, field), (error) =>
        invalid(source, field, error.reason)
      )
      const env = service.env ?? defaultEnv(tag)
      if (!envName.test(env) || env.length > 255) {
        return yield* invalid(
          source,
          `${field}.env`,
          `${JSON.stringify(env)} is not a portable variable name ([A-Za-z_][A-Za-z0-9_]*, at most 255 characters)${service.env === undefined ? "; set env for this service" : ""}`
        )
      }
      const clash = names.get(env.toUpperCase())
      if (clash !== undefined) {
        return yield* invalid(
          source,
          `${field}.env`,
          `${env} is also the variable of service ${JSON.stringify(clash)}`
        )
      }
      names.set(env.toUpperCase(), tag)
      services.push({ tag: valid, offset: service.offset, preferred: service.preferred, env })
    }
    if (services.length === 0)
      return yield* invalid(source, "reservations.services", "no services are listed")
    return { base: reservations.base, services }
  })

/**
 * trop's occupancy policy: `skip` turns the check off; the others drop a protocol or an address
 * family, or (`allInterfaces`) add the wildcard addresses to the loopback ones.
 */
export interface OccupancyPolicy {
  readonly skip: boolean
  readonly skipIp4: boolean
  readonly skipIp6: boolean
  readonly skipTcp: boolean
  readonly skipUdp: boolean
  readonly allInterfaces: boolean
}

/** trop's default policy: TCP and UDP probed on the loopback addresses of both families. */
export const defaultOccupancy: OccupancyPolicy = {
  skip: false,
  skipIp4: false,
  skipIp6: false,
  skipTcp: false,
  skipUdp: false,
  allInterfaces: false
}

/** What the layers say, merged: each later layer's setting replaces the earlier one; exclusions add up. */
export interface Effective {
  readonly project: string | undefined
  readonly task: string | undefined
  readonly path: string | undefined
  readonly range: { readonly min: number; readonly max: number } | undefined
  readonly exclude: ReadonlyArray<Port.PortRange>
  readonly occupancy: OccupancyPolicy
  readonly expireAfterDays: number | undefined
  readonly autoprune: boolean
  readonly autoexpire: boolean
  readonly allowUnrelated: boolean
  readonly allowProjectChange: boolean
  readonly allowTaskChange: boolean
  readonly outputFormat: Document["output_format"]
}

const boolEnv = (
  value: string | undefined,
  name: string
): Effect.Effect<boolean | undefined, InvalidConfig> => {
  if (value === undefined || value === "") return Effect.succeed(undefined)
  if (/^(1|true|yes|on)$/i.test(value)) return Effect.succeed(true)
  if (/^(0|false|no|off)$/i.test(value)) return Effect.succeed(false)
  return Effect.fail(invalid("environment", name, `${JSON.stringify(value)} is not a boolean (true/false)`))
}

/** Merges the layers and then the environment (`TROP_*`) into one setting each. */
export const resolve = (
  layers: Layers,
  env: Readonly<Record<string, string | undefined>>
): Effect.Effect<Effective, InvalidConfig> =>
  Effect.gen(function* () {
    const loaded = [layers.user, layers.project, layers.local].filter((layer) => layer !== undefined)
    const last = <A>(pick: (document: Document) => A | undefined): A | undefined => {
      let found: A | undefined
      for (const layer of loaded) found = pick(layer.document) ?? found
      return found
    }
    const exclude: Array<Port.PortRange> = []
    for (const layer of loaded) exclude.push(...(yield* exclusionsOf(layer.document, layer.file)))
    const ports = last((document) => document.ports)
    const range =
      ports === undefined
        ? undefined
        : {
            min: ports.min,
            max: ports.max ?? (ports.max_offset === undefined ? Port.highest : ports.min + ports.max_offset)
          }
    if (range !== undefined && (range.max > Port.highest || range.max < range.min)) {
      return yield* invalid(
        layers.local?.file ?? layers.project?.file ?? "config",
        "ports",
        `${range.min}-${range.max} is not a port range`
      )
    }
    // Key by key, as trop merges them: a local file can drop UDP without undoing the project's skip_ip6.
    const occupancy = <A>(pick: (check: NonNullable<Document["occupancy_check"]>) => A | undefined) =>
      last((document) =>
        document.occupancy_check === undefined ? undefined : pick(document.occupancy_check)
      )
    const occupancyEnv = (name: string, fromFiles: boolean | undefined) =>
      Effect.map(boolEnv(env[name], name), (value) => (value ?? fromFiles) === true)
    const allowChange = last((document) => document.allow_change) ?? false
    const noPrune =
      (yield* boolEnv(env.TROP_DISABLE_AUTOPRUNE, "TROP_DISABLE_AUTOPRUNE")) ??
      last((d) => d.disable_autoprune)
    const noExpire =
      (yield* boolEnv(env.TROP_DISABLE_AUTOEXPIRE, "TROP_DISABLE_AUTOEXPIRE")) ??
      last((d) => d.disable_autoexpire)
    const skip =
      (yield* boolEnv(env.TROP_SKIP_OCCUPANCY_CHECK, "TROP_SKIP_OCCUPANCY_CHECK")) ??
      occupancy((check) => check.skip)
    const nonEmpty = (value: string | undefined) => (value === undefined || value === "" ? undefined : value)
    return {
      project: nonEmpty(env.TROP_PROJECT) ?? last((document) => document.project),
      task: nonEmpty(env.TROP_TASK),
      path: nonEmpty(env.TROP_PATH),
      range,
      exclude,
      occupancy: {
        skip: skip === true,
        skipIp4: yield* occupancyEnv(
          "TROP_SKIP_IPV4",
          occupancy((check) => check.skip_ip4)
        ),
        skipIp6: yield* occupancyEnv(
          "TROP_SKIP_IPV6",
          occupancy((check) => check.skip_ip6)
        ),
        skipTcp: yield* occupancyEnv(
          "TROP_SKIP_TCP",
          occupancy((check) => check.skip_tcp)
        ),
        skipUdp: yield* occupancyEnv(
          "TROP_SKIP_UDP",
          occupancy((check) => check.skip_udp)
        ),
        allInterfaces: yield* occupancyEnv(
          "TROP_CHECK_ALL_INTERFACES",
          occupancy((check) => check.check_all_interfaces)
        )
      },
      expireAfterDays: last((document) => document.cleanup?.expire_after_days),
      autoprune: noPrune !== true,
      autoexpire: noExpire !== true,
      allowUnrelated: last((document) => document.allow_unrelated_path) ?? false,
      allowProjectChange: allowChange || (last((document) => document.allow_change_project) ?? false),
      allowTaskChange: allowChange || (last((document) => document.allow_change_task) ?? false),
      outputFormat: last((document) => document.output_format)
    }
  })

/**
 * The addresses a policy probes, as trop: the loopback of each family not skipped, and with
 * `allInterfaces` its wildcard address too (which sees a socket on any address of the family).
 */
export const hostsOf = (occupancy: OccupancyPolicy): ReadonlyArray<string> => [
  ...(occupancy.skipIp4 ? [] : occupancy.allInterfaces ? ["127.0.0.1", "0.0.0.0"] : ["127.0.0.1"]),
  ...(occupancy.skipIp6 ? [] : occupancy.allInterfaces ? ["::1", "::"] : ["::1"])
]

/** The transports a policy probes: TCP and UDP, less the skipped ones. */
export const protocolsOf = (occupancy: OccupancyPolicy): ReadonlyArray<Occupancy.Protocol> => {
  const protocols: Array<Occupancy.Protocol> = []
  if (!occupancy.skipTcp) protocols.push("tcp")
  if (!occupancy.skipUdp) protocols.push("udp")
  return protocols
}

/** True when a policy probes nothing: `skip`, or every protocol or every family skipped. */
export const probesNothing = (occupancy: OccupancyPolicy): boolean =>
  occupancy.skip || hostsOf(occupancy).length === 0 || protocolsOf(occupancy).length === 0
