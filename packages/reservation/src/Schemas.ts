/**
 * The data of the reservation registry: tags and labels, the reservation record, and every
 * operation's request and result. Requests are plain data (numbers, strings) so the CLI and the
 * HTTP layer can decode them with these schemas; the service validates their meaning and answers
 * bad input with a typed error naming the field.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { ExclusionInput, Port, RangeInput } from "./Port.js"
import { InvalidLabel, InvalidTag } from "./ReservationError.js"

/** The longest tag, in characters. */
export const maxTagLength = 128
/** The longest project or task label, in characters. */
export const maxLabelLength = 256

// Control characters (C0, DEL, C1) and the Unicode line/paragraph separators: any of them would
// let a tag forge lines in `keel port list` output or shell exports.
const controlCharacter = /[\p{Cc}\u2028\u2029]/u

const problemOf = (value: string, maxLength: number): string | undefined => {
  if (value.length === 0) return "it is empty (or only whitespace)"
  if (controlCharacter.test(value)) return "it contains control characters"
  if ([...value].length > maxLength) return `it is longer than ${maxLength} characters`
  return undefined
}

/** A service name within a path (`web`, `api`): trimmed, 1–128 characters, no control characters. */
export const Tag = Schema.String.pipe(
  Schema.filter((value) => value === value.trim() && problemOf(value, maxTagLength) === undefined),
  Schema.brand("Tag")
)

/** A service name within a path. */
export type Tag = typeof Tag.Type

/** A project or task label: trimmed, 1–256 characters, no control characters. */
export const Label = Schema.String.pipe(
  Schema.filter((value) => value === value.trim() && problemOf(value, maxLabelLength) === undefined),
  Schema.brand("Label")
)

/** A project or task label. */
export type Label = typeof Label.Type

/** `raw` trimmed as a `Tag`, or `InvalidTag` naming `field`. */
export const validateTag = (raw: string, field: string): Effect.Effect<Tag, InvalidTag> => {
  const trimmed = raw.trim()
  const reason = problemOf(trimmed, maxTagLength)
  return reason === undefined
    ? Effect.succeed(Tag.make(trimmed))
    : Effect.fail(new InvalidTag({ field, tag: raw, reason }))
}

/** `raw` trimmed as a `Label`, or `InvalidLabel` naming `field`. */
export const validateLabel = (raw: string, field: string): Effect.Effect<Label, InvalidLabel> => {
  const trimmed = raw.trim()
  const reason = problemOf(trimmed, maxLabelLength)
  return reason === undefined
    ? Effect.succeed(Label.make(trimmed))
    : Effect.fail(new InvalidLabel({ field, label: raw, reason }))
}

/** An absolute, normalized path with symlinks resolved, as stored (the service resolves it). */
export const ReservationPath = Schema.String.pipe(
  Schema.filter(
    (value) => (value.startsWith("/") || /^[A-Za-z]:[\\/]/.test(value)) && !value.includes("\0"),
    { message: () => "an absolute path without NUL characters" }
  ),
  Schema.brand("ReservationPath")
)

/** An absolute, normalized path with symlinks resolved, as stored. */
export type ReservationPath = typeof ReservationPath.Type

/** One reservation: the port held by a (path, tag). */
export const Reservation = Schema.Struct({
  path: ReservationPath,
  /** `null` for the path's untagged reservation. */
  tag: Schema.NullOr(Tag),
  port: Port,
  project: Schema.NullOr(Label),
  task: Schema.NullOr(Label),
  createdAt: Schema.DateTimeUtc,
  /** Set at creation and on every reserve of the same (path, tag). */
  lastUsedAt: Schema.DateTimeUtc,
  /** `lastUsedAt + ttl` for a reservation made with a ttl; `null` when it never expires. */
  expiresAt: Schema.NullOr(Schema.DateTimeUtc)
})

/** One reservation: the port held by a (path, tag). */
export type Reservation = typeof Reservation.Type

/**
 * A time to live: milliseconds, or an Effect duration text such as `"90 minutes"` or
 * `"7 days"`. A reservation made with one expires `ttl` after its last use.
 */
export const TtlInput = Schema.Union(Schema.Number, Schema.String)

/** Per-call occupancy settings; omitted fields keep the configured ones. */
export const OccupancyOverride = Schema.Struct({
  /** `false` hands out ports without checking whether something listens on them. */
  enabled: Schema.optional(Schema.Boolean),
  /** IP addresses to probe (`127.0.0.1`, `::1`, `0.0.0.0`…). */
  hosts: Schema.optional(Schema.Array(Schema.String)),
  /** The transports to probe: `tcp`, `udp` (default both, as trop). */
  protocols: Schema.optional(Schema.Array(Schema.Literal("tcp", "udp"))),
  /** How long one probe may take before the port counts as occupied. */
  timeoutMs: Schema.optional(Schema.Number)
})

/** Per-call occupancy settings. */
export type OccupancyOverride = typeof OccupancyOverride.Type

/**
 * A project and task the caller guessed (trop guesses them from git): recorded only when the
 * reservation is created, where no explicit `project`/`task` is given; never compared with an
 * existing reservation's labels, so a guess never fails as `StickyFieldChanged`.
 */
export const Guess = Schema.Struct({
  project: Schema.optional(Schema.String),
  task: Schema.optional(Schema.String)
})

/** A guessed project and task. */
export type Guess = typeof Guess.Type

/** Settings every allocating request may override for itself. */
const allocationFields = {
  /** The caller's working directory (absolute); the CLI passes `process.cwd()`. */
  cwd: Schema.String,
  /** Replaces the configured default range for this call. */
  range: Schema.optional(RangeInput),
  /** Excluded ports added to the configured exclusions for this call. */
  exclude: Schema.optional(Schema.Array(ExclusionInput)),
  occupancy: Schema.optional(OccupancyOverride),
  /** Recorded on new reservations; sticky on existing ones (a change needs `force`). */
  project: Schema.optional(Schema.String),
  task: Schema.optional(Schema.String),
  /** Labels for a new reservation when `project`/`task` are not given; an existing one keeps its own. */
  guess: Schema.optional(Guess),
  ttl: Schema.optional(TtlInput),
  /**
   * Take the preferred port even when it is excluded or in use, move an existing reservation to
   * it, overwrite sticky project/task and skip the unrelated-path guard. Never takes a port that
   * another (path, tag) holds.
   */
  force: Schema.optional(Schema.Boolean),
  /** Act on a path that is neither the working directory nor related to it. */
  allowUnrelated: Schema.optional(Schema.Boolean),
  /** Let this request change the sticky project of an existing reservation (without the rest of `force`). */
  allowProjectChange: Schema.optional(Schema.Boolean),
  /** Let this request change the sticky task of an existing reservation. */
  allowTaskChange: Schema.optional(Schema.Boolean),
  /** Move an existing reservation to its (different) preferred port, when that port is free. */
  overwrite: Schema.optional(Schema.Boolean),
  /** Ignore the configured and requested exclusions for this call. */
  ignoreExclusions: Schema.optional(Schema.Boolean),
  /** Decide and report what would be reserved; write nothing. */
  dryRun: Schema.optional(Schema.Boolean),
  /**
   * When the range is exhausted, remove reservations not used for this long (milliseconds or
   * duration text) and try again — in the same transaction.
   */
  expireOnExhaustion: Schema.optional(TtlInput),
  /** When the range is exhausted, remove reservations whose directory is gone and try again, in the same transaction. */
  pruneOnExhaustion: Schema.optional(Schema.Boolean)
}

/** `reserve`: one port for (path, tag). */
export const ReserveRequest = Schema.Struct({
  /** An existing directory, absolute. */
  path: Schema.String,
  tag: Schema.optional(Schema.String),
  /** Honoured when free; otherwise the lowest free port of the range is chosen. */
  preferred: Schema.optional(Schema.Number),
  ...allocationFields
})

/** `reserve`: one port for (path, tag). */
export type ReserveRequest = typeof ReserveRequest.Type

/** One service of a group. */
export const GroupService = Schema.Struct({
  tag: Schema.String,
  /** Honoured when free. */
  preferred: Schema.optional(Schema.Number),
  /**
   * Position relative to the group's base port: services with offsets are placed together as
   * one pattern (`base + offset` each) at the lowest base where every port of it is free.
   */
  offset: Schema.optional(Schema.Number)
})

/** One service of a group. */
export type GroupService = typeof GroupService.Type

/** The largest group one request may reserve. */
export const maxGroupSize = 100

/** `reserveGroup`: a port for every service of a path, all or nothing. */
export const GroupRequest = Schema.Struct({
  path: Schema.String,
  services: Schema.Array(GroupService),
  /** The base port tried first for the offset pattern (default: the range's minimum). */
  base: Schema.optional(Schema.Number),
  ...allocationFields
})

/** `reserveGroup`: a port for every service of a path, all or nothing. */
export type GroupRequest = typeof GroupRequest.Type

/** `release`: one tag of a path, or every tag of it. */
export const ReleaseRequest = Schema.Struct({
  /** Absolute; it need not exist any more. */
  path: Schema.String,
  cwd: Schema.String,
  /** Only this tag; every tag of the path when omitted. */
  tag: Schema.optional(Schema.String),
  /** Only the path's untagged reservation. */
  untaggedOnly: Schema.optional(Schema.Boolean),
  /** Also release every reservation below the path. */
  recursive: Schema.optional(Schema.Boolean),
  /** Report what would be released; change nothing. */
  dryRun: Schema.optional(Schema.Boolean),
  allowUnrelated: Schema.optional(Schema.Boolean)
})

/** `release`: one tag of a path, or every tag of it. */
export type ReleaseRequest = typeof ReleaseRequest.Type

/** `list`: every filter narrows; none lists everything. */
export const ListRequest = Schema.Struct({
  /** The path and everything below it (whole path segments: `/a/b` does not match `/a/bc`). */
  pathPrefix: Schema.optional(Schema.String),
  project: Schema.optional(Schema.String),
  tag: Schema.optional(Schema.String)
})

/** `list` filters. */
export type ListRequest = typeof ListRequest.Type

/** `show`: the reservation of one (path, tag). */
export const ShowRequest = Schema.Struct({
  path: Schema.String,
  tag: Schema.optional(Schema.String)
})

/** `show`: the reservation of one (path, tag). */
export type ShowRequest = typeof ShowRequest.Type

/** `showPort`: the reservation holding one port. */
export const ShowPortRequest = Schema.Struct({ port: Schema.Number })

/** `showPort`: the reservation holding one port. */
export type ShowPortRequest = typeof ShowPortRequest.Type

/** `cleanup`: which stale reservations to remove. */
export const CleanupRequest = Schema.Struct({
  /** Report what would be removed; change nothing. */
  dryRun: Schema.optional(Schema.Boolean),
  /** Remove reservations past their ttl (default true). */
  expired: Schema.optional(Schema.Boolean),
  /** Remove reservations whose path no longer exists (default true). */
  missingPaths: Schema.optional(Schema.Boolean),
  /** Also remove reservations not used for this long (milliseconds or duration text). */
  unusedFor: Schema.optional(TtlInput)
})

/** `cleanup` options. */
export type CleanupRequest = typeof CleanupRequest.Type

/** What `reserve` did: created a reservation, refreshed an existing one, or moved it (`force`). */
export const Outcome = Schema.Literal("created", "refreshed", "moved")

/** What `reserve` did. */
export type Outcome = typeof Outcome.Type

/** The result of `reserve`. */
export const Reserved = Schema.Struct({ reservation: Reservation, outcome: Outcome })

/** The result of `reserve`. */
export type Reserved = typeof Reserved.Type

/** The result of `reserveGroup`: one entry per service, in request order. */
export const GroupReserved = Schema.Struct({ path: ReservationPath, reservations: Schema.Array(Reserved) })

/** The result of `reserveGroup`. */
export type GroupReserved = typeof GroupReserved.Type

/** The result of `release`: the reservations removed — or, in a dry run, that would be (empty when none match). */
export const Released = Schema.Struct({ dryRun: Schema.Boolean, released: Schema.Array(Reservation) })

/** The result of `release`. */
export type Released = typeof Released.Type

/** Why cleanup removes a reservation. */
export const CleanupReason = Schema.Literal("expired", "missing-path", "unused")

/** Why cleanup removes a reservation. */
export type CleanupReason = typeof CleanupReason.Type

/** The result of `cleanup`: what was removed — or, in a dry run, what would be. */
export const CleanupReport = Schema.Struct({
  dryRun: Schema.Boolean,
  removed: Schema.Array(Schema.Struct({ reservation: Reservation, reason: CleanupReason }))
})

/** The result of `cleanup`. */
export type CleanupReport = typeof CleanupReport.Type

/** `migrate`: move reservations from one path to another in one transaction. */
export const MigrateRequest = Schema.Struct({
  /** Absolute; it need not exist any more. */
  from: Schema.String,
  /** Absolute; the new home of the reservations. */
  to: Schema.String,
  /** Also move every reservation below `from` (to the same place below `to`). */
  recursive: Schema.optional(Schema.Boolean),
  /** Replace reservations that already exist at the destination keys (their ports are freed). */
  overwrite: Schema.optional(Schema.Boolean),
  /** Report what would move; change nothing. */
  dryRun: Schema.optional(Schema.Boolean)
})

/** `migrate`'s request. */
export type MigrateRequest = typeof MigrateRequest.Type

/** The result of `migrate`: each reservation moved (or that would be), and those replaced at the destination. */
export const Migrated = Schema.Struct({
  dryRun: Schema.Boolean,
  moved: Schema.Array(Schema.Struct({ from: ReservationPath, reservation: Reservation })),
  replaced: Schema.Array(Reservation)
})

/** The result of `migrate`. */
export type Migrated = typeof Migrated.Type
