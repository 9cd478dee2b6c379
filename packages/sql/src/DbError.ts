/**
 * Typed database errors. Every driver failure (better-sqlite3, libSQL, pg, PGlite, Turso) is
 * classified here, once, into a tag that every package can match on. Messages are scrubbed of
 * secrets and never carry the driver's error object or the statement's parameters.
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import { scrub } from "./Dsn.js"
import * as TursoErrors from "./internal/tursoErrors.js"

const fields = {
  /** The driver's code: `SQLITE_BUSY`, a five-character SQLSTATE such as `40001`, `ECONNRESET`… */
  code: Schema.String,
  /** The driver's message, with secrets removed. */
  message: Schema.String
}

/** The database is locked by another connection (SQLITE_BUSY). Transient: safe to retry idempotent work. */
export class Busy extends Schema.TaggedError<Busy>()("Busy", fields) {}

/** A table or row lock is held (SQLITE_LOCKED, PostgreSQL 55P03). Transient. */
export class Locked extends Schema.TaggedError<Locked>()("Locked", fields) {}

/** PostgreSQL could not serialize the transaction (40001). Transient: the transaction rolled back. */
export class SerializationFailure extends Schema.TaggedError<SerializationFailure>()(
  "SerializationFailure",
  fields
) {}

/** PostgreSQL chose this transaction as a deadlock victim (40P01). Transient: it rolled back. */
export class Deadlock extends Schema.TaggedError<Deadlock>()("Deadlock", fields) {}

/** A unique or primary-key constraint rejected the write. */
export class UniqueViolation extends Schema.TaggedError<UniqueViolation>()("UniqueViolation", {
  ...fields,
  constraint: Schema.optional(Schema.String)
}) {}

/** A foreign-key constraint rejected the write (at the statement, or deferred to COMMIT). */
export class ForeignKeyViolation extends Schema.TaggedError<ForeignKeyViolation>()("ForeignKeyViolation", {
  ...fields,
  constraint: Schema.optional(Schema.String)
}) {}

/**
 * The database could not be reached: no connection could be opened (refused, no such host, the
 * server is starting or shutting down, too many connections). Nothing was sent, so nothing ran.
 */
export class Unavailable extends Schema.TaggedError<Unavailable>()("Unavailable", fields) {}

/** The connection failed or was closed; the outcome of an in-flight statement is unknown. */
export class ConnectionLost extends Schema.TaggedError<ConnectionLost>()("ConnectionLost", fields) {}

/** Any other database failure, with the driver's code and (scrubbed) message. */
export class DatabaseFailure extends Schema.TaggedError<DatabaseFailure>()("DatabaseFailure", fields) {}

/** Every classified database error. */
export type DbError =
  | Busy
  | Locked
  | SerializationFailure
  | Deadlock
  | UniqueViolation
  | ForeignKeyViolation
  | Unavailable
  | ConnectionLost
  | DatabaseFailure

/** The schema of `DbError`, for errors that cross a serialization boundary. */
export const DbError = Schema.Union(
  Busy,
  Locked,
  SerializationFailure,
  Deadlock,
  UniqueViolation,
  ForeignKeyViolation,
  Unavailable,
  ConnectionLost,
  DatabaseFailure
)

/** Errors after which re-running the same *idempotent* work may succeed. */
export type Transient = Busy | Locked | SerializationFailure | Deadlock

const dbErrorTags: ReadonlySet<string> = new Set([
  "Busy",
  "Locked",
  "SerializationFailure",
  "Deadlock",
  "UniqueViolation",
  "ForeignKeyViolation",
  "Unavailable",
  "ConnectionLost",
  "DatabaseFailure"
])

/** True for any classified database error. */
export const isDbError = (u: unknown): u is DbError =>
  Predicate.hasProperty(u, "_tag") && typeof u._tag === "string" && dbErrorTags.has(u._tag)

const transientTags: ReadonlySet<string> = new Set(["Busy", "Locked", "SerializationFailure", "Deadlock"])

/** True for a busy, locked, serialization or deadlock error: work that rolled back may be re-run. */
export const isTransient = (u: unknown): u is Transient =>
  Predicate.hasProperty(u, "_tag") && typeof u._tag === "string" && transientTags.has(u._tag)

/**
 * Codes that can only come from opening a connection, before any statement was sent: refused,
 * unresolvable or unreachable host, and PostgreSQL's "cannot connect now" (starting up or
 * shutting down), "unable to establish", "rejected" and "too many connections".
 */
const unreachableCodes: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  "57P03",
  "08001",
  "08004",
  "53300"
])

const connectionCodes: ReadonlySet<string> = new Set([
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "CLIENT_CLOSED",
  "HRANA_WEBSOCKET_ERROR",
  "SERVER_ERROR",
  "57P01",
  "57P02"
])

const connectionMessage =
  /connection (terminated|ended|closed|timeout|is closed|refused|lost)|client (is )?(closed|has encountered a connection error)|not queryable|database is closed|pglite is closed|database connection is not open|database must be connected/i

const stringProperty = (u: unknown, key: string): string | undefined =>
  Predicate.hasProperty(u, key) && typeof u[key] === "string" ? (u[key] as string) : undefined

/** Finds the innermost driver error inside an `SqlError` (or any error) and its code. */
const driverFailure = (error: unknown): { readonly code: string; readonly message: string } => {
  let current: unknown = error
  let message = ""
  for (let depth = 0; depth < 5 && current !== undefined && current !== null; depth++) {
    const code = stringProperty(current, "code")
    const own = stringProperty(current, "message")
    if (own !== undefined && own !== "") message = own
    if (code !== undefined && code !== "") return { code, message }
    current = Predicate.hasProperty(current, "cause") ? current.cause : undefined
  }
  return { code: "UNKNOWN", message }
}

const sqliteUniqueCodes: ReadonlySet<string> = new Set([
  "SQLITE_CONSTRAINT_UNIQUE",
  "SQLITE_CONSTRAINT_PRIMARYKEY"
])

/**
 * Classifies a driver failure (an `SqlError` or the raw error it wraps). Idempotent: a value that
 * is already a `DbError` is returned unchanged. `secrets` are literal strings to scrub besides
 * the patterns `Dsn.scrub` recognises.
 */
export const classify = (error: unknown, secrets: ReadonlyArray<string> = []): DbError => {
  if (isDbError(error)) return error
  const failure = driverFailure(error)
  // The Turso engine gives no SQLite code: its message stands for one (see internal/tursoErrors.ts).
  const code =
    failure.code === TursoErrors.engineCode
      ? (TursoErrors.sqliteCode(failure.message) ?? failure.code)
      : failure.code
  const message = scrub(failure.message === "" ? "database error" : failure.message, secrets)
  const constraint = (() => {
    const inner = Predicate.hasProperty(error, "cause") ? error.cause : error
    return stringProperty(inner, "constraint")
  })()
  if (code.startsWith("SQLITE_BUSY")) return new Busy({ code, message })
  if (code.startsWith("SQLITE_LOCKED") || code === "55P03") return new Locked({ code, message })
  if (code === "40001") return new SerializationFailure({ code, message })
  if (code === "40P01") return new Deadlock({ code, message })
  if (sqliteUniqueCodes.has(code) || code === "23505") {
    return new UniqueViolation(constraint === undefined ? { code, message } : { code, message, constraint })
  }
  if (code === "SQLITE_CONSTRAINT_FOREIGNKEY" || code === "23503") {
    return new ForeignKeyViolation(
      constraint === undefined ? { code, message } : { code, message, constraint }
    )
  }
  // SQLSTATE class 08 is "connection exception", except 08P01 (protocol violation, e.g. too many
  // bind parameters), which is a permanent failure of the statement.
  if (unreachableCodes.has(code)) return new Unavailable({ code, message })
  const connectionClass = code.startsWith("08") && code !== "08P01"
  if (connectionCodes.has(code) || connectionClass || connectionMessage.test(failure.message)) {
    return new ConnectionLost({ code, message })
  }
  return new DatabaseFailure({ code, message })
}

/**
 * True when a COMMIT that failed with `error` provably did not take effect, whatever state the
 * session was left in: SQLite could not write the commit record because the disk (or the
 * database's size limit) is full (`SQLITE_FULL`). In WAL mode the commit record is the last frame
 * written, and in rollback-journal mode the commit point is deleting the journal, which needs no
 * space; SQLite rolls such a transaction back itself.
 */
export const commitNeverApplied = (error: DbError): boolean => error.code.startsWith("SQLITE_FULL")

/**
 * Turns the `SqlError` of an effect into a classified `DbError`, leaving other errors alone.
 * Use it at the boundary of a statement; domain packages then map `DbError` to their own errors.
 */
export const refine = <A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, Exclude<E, SqlError> | DbError, R> =>
  Effect.mapError(effect, (error): Exclude<E, SqlError> | DbError =>
    isSqlError(error) ? classify(error) : (error as Exclude<E, SqlError>)
  )

/** True for `@effect/sql`'s `SqlError`. */
export const isSqlError = (u: unknown): u is SqlError =>
  Predicate.hasProperty(u, "_tag") && u._tag === "SqlError"

/**
 * Start-up found the connection configured wrongly (foreign keys not enforced, a pragma that did
 * not take). Keel refuses to run rather than run without its guarantees.
 */
export class SetupFailed extends Schema.TaggedError<SetupFailed>()("SetupFailed", {
  backend: Schema.String,
  setting: Schema.String,
  expected: Schema.String,
  actual: Schema.String
}) {
  override get message(): string {
    return `${this.backend}: ${this.setting} is ${this.actual}, expected ${this.expected}`
  }
}
