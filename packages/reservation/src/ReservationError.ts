/**
 * Every way a reservation operation can fail, as `Schema.TaggedError`s that cross the HTTP
 * boundary. Bad input fails before anything is read or written; each error names what to fix.
 */
import * as Failure from "@keel/sql/Failure"
import * as Schema from "effect/Schema"

/** An inclusive range of port numbers as it appears in errors. */
const RangeFields = Schema.Struct({ min: Schema.Number, max: Schema.Number })

/** Renders user input for a message: quoted, with control characters escaped. */
const quote = (value: string): string => JSON.stringify(value)

/** A port number is not an integer from 1 to 65535. Nothing was changed. */
export class InvalidPort extends Schema.TaggedError<InvalidPort>()("InvalidPort", {
  /** Which input held it: `preferred`, `range.min`, `exclude[2]`, `services[1].preferred`… */
  field: Schema.String,
  /** The rejected value, as text (it may not be a number at all). */
  value: Schema.String
}) {
  override get message(): string {
    return `${this.field}: ${this.value} is not a port number (an integer from 1 to 65535)`
  }
}

/** A port range is inverted (min above max). Nothing was changed. */
export class InvalidRange extends Schema.TaggedError<InvalidRange>()("InvalidRange", {
  field: Schema.String,
  min: Schema.Number,
  max: Schema.Number
}) {
  override get message(): string {
    return `${this.field}: the range ${this.min}-${this.max} is inverted (min must not exceed max)`
  }
}

/** A tag is empty, too long, or contains control characters. Nothing was changed. */
export class InvalidTag extends Schema.TaggedError<InvalidTag>()("InvalidTag", {
  field: Schema.String,
  tag: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.field}: invalid tag ${quote(this.tag)}: ${this.reason}`
  }
}

/** A project or task label is empty, too long, or contains control characters. Nothing was changed. */
export class InvalidLabel extends Schema.TaggedError<InvalidLabel>()("InvalidLabel", {
  field: Schema.String,
  label: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.field}: invalid label ${quote(this.label)}: ${this.reason}`
  }
}

/** Why a path was rejected. */
export const PathProblem = Schema.Literal("relative", "missing", "not-a-directory", "malformed", "unreadable")

/** A path is relative, missing, not a directory, or malformed. Nothing was changed. */
export class InvalidPath extends Schema.TaggedError<InvalidPath>()("InvalidPath", {
  /** `path`, `cwd` or `pathPrefix`. */
  field: Schema.String,
  path: Schema.String,
  problem: PathProblem,
  detail: Schema.optional(Schema.String)
}) {
  override get message(): string {
    const what = {
      relative: "is relative; pass an absolute path (resolve it against the working directory first)",
      missing: "does not exist",
      "not-a-directory": "is not a directory",
      malformed: "is not a usable path",
      unreadable: "cannot be resolved"
    }[this.problem]
    return `${this.field}: ${quote(this.path)} ${what}${this.detail === undefined ? "" : ` (${this.detail})`}`
  }
}

/**
 * The path is neither the caller's working directory nor an ancestor or descendant of it. A
 * guard against editing another project's reservations by accident; `allowUnrelated` (or
 * `force`) lifts it. Nothing was changed.
 */
export class UnrelatedPath extends Schema.TaggedError<UnrelatedPath>()("UnrelatedPath", {
  path: Schema.String,
  cwd: Schema.String
}) {
  override get message(): string {
    return `${this.path} is unrelated to the working directory ${this.cwd} (neither an ancestor nor a descendant); pass allowUnrelated to act on it anyway`
  }
}

/** Any other malformed request field (a ttl, an offset, a group's shape, an occupancy override). */
export class InvalidRequest extends Schema.TaggedError<InvalidRequest>()("InvalidRequest", {
  field: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.field}: ${this.reason}`
  }
}

/** The configuration (a file or a value) is invalid; `field` names the offending setting. */
export class InvalidConfig extends Schema.TaggedError<InvalidConfig>()("InvalidConfig", {
  /** The file it came from, when it came from a file. */
  source: Schema.optional(Schema.String),
  /** The setting, as a path: `range.min`, `exclude[1]`, `occupancy.timeoutMs`; `(file)` for the file itself. */
  field: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `invalid reservation config${this.source === undefined ? "" : ` in ${this.source}`}: ${this.field}: ${this.reason}`
  }
}

/**
 * No port could be handed out: every candidate in the range is reserved by someone else,
 * excluded, or in use on this machine. Nothing was changed (a group gets none of its ports).
 */
export class NoPortAvailable extends Schema.TaggedError<NoPortAvailable>()("NoPortAvailable", {
  path: Schema.String,
  /** The tag that could not be placed (`null` for the untagged reservation). */
  tag: Schema.NullOr(Schema.String),
  range: RangeFields,
  /** How many new ports the request needed. */
  requested: Schema.Number
}) {
  override get message(): string {
    const key = this.tag === null ? this.path : `${this.path} [${this.tag}]`
    const size = this.range.max - this.range.min + 1
    return `no free port in ${this.range.min}-${this.range.max} for ${key}: all ${size} ports are reserved, excluded or in use (needed ${this.requested}); widen the range, release reservations or run cleanup`
  }
}

/**
 * `force` insisted on a preferred port that another (path, tag) holds. Force never takes a port
 * from another reservation: that would hand one port to two owners. Nothing was changed.
 */
export class PreferredPortReserved extends Schema.TaggedError<PreferredPortReserved>()(
  "PreferredPortReserved",
  {
    port: Schema.Number,
    holderPath: Schema.String,
    holderTag: Schema.NullOr(Schema.String)
  }
) {
  override get message(): string {
    const holder = this.holderTag === null ? this.holderPath : `${this.holderPath} [${this.holderTag}]`
    return `port ${this.port} is reserved by ${holder}; release it first (force does not take ports from other reservations)`
  }
}

/**
 * A reservation exists with a different project or task than requested. These labels are
 * sticky so that a second agent does not silently relabel the first one's reservation; `force`
 * overwrites them. Nothing was changed.
 */
export class StickyFieldChanged extends Schema.TaggedError<StickyFieldChanged>()("StickyFieldChanged", {
  path: Schema.String,
  tag: Schema.NullOr(Schema.String),
  field: Schema.Literal("project", "task"),
  current: Schema.NullOr(Schema.String),
  requested: Schema.String
}) {
  override get message(): string {
    return `the reservation for ${this.path}${this.tag === null ? "" : ` [${this.tag}]`} has ${this.field} ${this.current === null ? "unset" : quote(this.current)}, not ${quote(this.requested)}; pass force to change it`
  }
}

/** No reservation matches the (path, tag) or port asked for. */
export class ReservationNotFound extends Schema.TaggedError<ReservationNotFound>()("ReservationNotFound", {
  path: Schema.optional(Schema.String),
  tag: Schema.optional(Schema.NullOr(Schema.String)),
  port: Schema.optional(Schema.Number)
}) {
  override get message(): string {
    if (this.port !== undefined) return `no reservation holds port ${this.port}`
    return `no reservation for ${this.path ?? "?"}${this.tag === undefined || this.tag === null ? "" : ` [${this.tag}]`}`
  }
}

/**
 * `migrate` would move a reservation onto a (path, tag) that already has one. Nothing was changed;
 * `overwrite` replaces the existing one.
 */
export class MigrationConflict extends Schema.TaggedError<MigrationConflict>()("MigrationConflict", {
  path: Schema.String,
  tag: Schema.NullOr(Schema.String),
  port: Schema.Number
}) {
  override get message(): string {
    return `${this.path}${this.tag === null ? "" : ` [${this.tag}]`} already holds port ${this.port}; pass overwrite to replace it`
  }
}

/** What a store failure can wrap: a classified database error or a failed transaction (`Failure.Cause`). */
export const StoreCause = Failure.Cause

/**
 * The database failed. `cause` says how: transient errors were already retried; a
 * `CommitOutcomeUnknown` means the write may or may not have happened — reserve, group and
 * release are idempotent by key, so calling them again is safe.
 */
export class ReservationStoreError extends Schema.TaggedError<ReservationStoreError>()(
  "ReservationStoreError",
  {
    operation: Schema.String,
    cause: StoreCause
  }
) {
  override get message(): string {
    return `reservation ${this.operation} failed in the database (${this.cause._tag}): ${this.cause.message}`
  }
}

/** Every failure of input validation. */
export type InputError =
  | InvalidPort
  | InvalidRange
  | InvalidTag
  | InvalidLabel
  | InvalidPath
  | InvalidRequest
  | UnrelatedPath

/** Every failure `reserve` and `reserveGroup` can return. */
export type ReserveError =
  | InputError
  | NoPortAvailable
  | PreferredPortReserved
  | StickyFieldChanged
  | ReservationStoreError
