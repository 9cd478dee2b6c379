/**
 * Data source names: which backend Keel talks to and where.
 *
 * This module is also the one place that redacts: every log line and error message that could
 * carry a DSN, a password or an auth token goes through `redact` or `scrub`.
 */
import * as Either from "effect/Either"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { scrub } from "./Scrub.js"

/** The DSN used when none is configured: an SQLite file in the working directory. */
export const defaultDsn = "./keel.db"

/** An SQLite database through better-sqlite3: a file path, or `:memory:`. */
export interface Sqlite {
  readonly _tag: "Sqlite"
  readonly filename: string
}

/** A PostgreSQL server. The URL keeps its password, so it is `Redacted`. */
export interface Postgres {
  readonly _tag: "Postgres"
  /** The URL node-postgres connects with (Keel's own parameters removed). */
  readonly url: Redacted.Redacted<string>
  readonly host: string
  readonly database: string
  /**
   * Name the statements a connection runs repeatedly, so PostgreSQL parses and plans them once
   * (default). `?prepare=false` turns it off, for poolers that do not keep prepared statements per
   * client (PgBouncer in transaction mode before 1.21).
   */
  readonly prepare: boolean
}

/** A libSQL database: a local `file:` or a remote `libsql://` server with an optional auth token. */
export interface Libsql {
  readonly _tag: "Libsql"
  readonly url: string
  readonly remote: boolean
  readonly authToken: Redacted.Redacted<string> | undefined
}

/** An embedded PGlite database: a data directory, or in memory. */
export interface Pglite {
  readonly _tag: "Pglite"
  readonly dataDir: string | undefined
}

/**
 * A database file through the Turso engine (`@tursodatabase/database`): a path or `:memory:`.
 * `multiprocess` asks for the engine's experimental multi-process WAL (`?multiprocess=1`).
 */
export interface Turso {
  readonly _tag: "Turso"
  readonly path: string
  readonly multiprocess: boolean
}

/** A parsed DSN. `redacted` is its printable form, with every secret replaced. */
export type Dsn = (Sqlite | Postgres | Libsql | Pglite | Turso) & { readonly redacted: string }

/** A DSN that cannot be used. Names the scheme and the reason; never the password or token. */
export class InvalidDsn extends Schema.TaggedError<InvalidDsn>()("InvalidDsn", {
  scheme: Schema.String,
  reason: Schema.String,
  dsn: Schema.String
}) {
  override get message(): string {
    return `Invalid DSN ${this.dsn} (scheme "${this.scheme}"): ${this.reason}`
  }
}

const SECRET = "***"
const secretParameter = /^(password|pass|pwd|secret|token|auth_?token|authtoken|api_?key|key|sslpassword)$/i
const schemePattern = /^([a-zA-Z][a-zA-Z0-9+.-]*):/

/**
 * A DSN with its password and any secret-looking query parameter (`authToken`, `password`, …)
 * replaced by `***`. Works on malformed input too: it never throws and never returns a secret
 * that `scrub` would recognise.
 */
export const redact = (dsn: string): string => {
  // file: DSNs are printed as given: URL parsing would rewrite a relative path as an absolute one.
  if (/^file:/i.test(dsn)) return scrub(dsn)
  try {
    const url = new URL(dsn)
    if (url.host !== "") {
      if (url.password !== "") url.password = SECRET
      for (const name of [...url.searchParams.keys()]) {
        if (secretParameter.test(name)) url.searchParams.set(name, SECRET)
      }
      return decodeURIComponent(url.toString())
    }
  } catch {
    // not a URL: fall through to the textual scrub
  }
  return scrub(dsn)
}

/** `Scrub.scrub` and its run limit, here beside the DSN rules they serve (`Scrub` imports nothing). */
export { maxTokenLength, scrub } from "./Scrub.js"

const invalid = (dsn: string, scheme: string, reason: string) =>
  Either.left(new InvalidDsn({ scheme, reason, dsn: redact(dsn) }))

const stripSlashes = (rest: string): string => (rest.startsWith("//") ? rest.slice(2) : rest)

const parseSqlite = (dsn: string, rest: string): Either.Either<Dsn, InvalidDsn> => {
  const filename = stripSlashes(rest)
  if (filename === "") return invalid(dsn, "sqlite", "the path is empty")
  if (filename.includes("\0")) return invalid(dsn, "sqlite", "the path contains a NUL character")
  return Either.right({ _tag: "Sqlite", filename, redacted: `sqlite:${filename}` })
}

const parsePostgres = (dsn: string, scheme: string): Either.Either<Dsn, InvalidDsn> => {
  let url: URL
  try {
    url = new URL(dsn)
  } catch {
    return invalid(dsn, scheme, "not a valid URL")
  }
  if (url.hostname === "" && !url.searchParams.has("host")) {
    return invalid(dsn, scheme, "the URL names no host")
  }
  if (url.port !== "" && !(Number(url.port) >= 1 && Number(url.port) <= 65535)) {
    return invalid(dsn, scheme, `port ${url.port} is outside 1-65535`)
  }
  const database = decodeURIComponent(url.pathname.replace(/^\//, ""))
  const prepare = url.searchParams.get("prepare")
  if (prepare !== null && prepare !== "true" && prepare !== "false") {
    return invalid(dsn, scheme, `prepare must be true or false, not "${prepare}"`)
  }
  url.searchParams.delete("prepare")
  return Either.right({
    _tag: "Postgres",
    url: Redacted.make(prepare === null ? dsn : url.toString()),
    prepare: prepare !== "false",
    host: url.hostname || (url.searchParams.get("host") ?? ""),
    database,
    redacted: redact(dsn)
  })
}

const parseLibsql = (
  dsn: string,
  scheme: string,
  envToken: Redacted.Redacted<string> | undefined
): Either.Either<Dsn, InvalidDsn> => {
  if (scheme === "file") {
    const path = stripSlashes(dsn.slice("file:".length))
    if (path === "" || path === "/") return invalid(dsn, scheme, "the path is empty")
    return Either.right({
      _tag: "Libsql",
      url: dsn,
      remote: false,
      authToken: undefined,
      redacted: redact(dsn)
    })
  }
  let url: URL
  try {
    url = new URL(dsn)
  } catch {
    return invalid(dsn, scheme, "not a valid URL")
  }
  if (url.hostname === "") return invalid(dsn, scheme, "the URL names no host")
  const fromDsn = url.searchParams.get("authToken") ?? url.searchParams.get("auth_token")
  url.searchParams.delete("authToken")
  url.searchParams.delete("auth_token")
  const authToken = fromDsn !== null && fromDsn !== "" ? Redacted.make(fromDsn) : envToken
  return Either.right({
    _tag: "Libsql",
    url: url.toString(),
    remote: true,
    authToken,
    redacted: redact(dsn)
  })
}

const parsePglite = (dsn: string, rest: string): Either.Either<Dsn, InvalidDsn> => {
  const path = stripSlashes(rest)
  if (path === "") return invalid(dsn, "pglite", "give a data directory or `memory`")
  if (path === "memory" || path === ":memory:") {
    return Either.right({ _tag: "Pglite", dataDir: undefined, redacted: "pglite:memory" })
  }
  return Either.right({ _tag: "Pglite", dataDir: path, redacted: `pglite:${path}` })
}

const tursoFlags: Readonly<Record<string, boolean>> = { "1": true, true: true, "0": false, false: false }

const parseTurso = (dsn: string, given: string): Either.Either<Dsn, InvalidDsn> => {
  // `turso:///abs/path` is an absolute path; `turso://host…` names a server, which this is not.
  const rest = given.startsWith("///") ? given.slice(2) : given
  if (rest.startsWith("//")) {
    return invalid(dsn, "turso", "turso: names a local file; use libsql:// for a remote Turso database")
  }
  const query = rest.indexOf("?")
  const path = query === -1 ? rest : rest.slice(0, query)
  if (path === "") return invalid(dsn, "turso", "the path is empty")
  if (path.includes("\0")) return invalid(dsn, "turso", "the path contains a NUL character")
  let multiprocess = false
  for (const [name, value] of new URLSearchParams(query === -1 ? "" : rest.slice(query + 1))) {
    const flag = tursoFlags[value.toLowerCase()]
    if (name !== "multiprocess")
      return invalid(dsn, "turso", `unknown parameter "${name}"; the only one is multiprocess`)
    if (flag === undefined) return invalid(dsn, "turso", "multiprocess must be 1, 0, true or false")
    multiprocess = flag
  }
  const memory = path === ":memory:" || path === "memory"
  if (memory && multiprocess)
    return invalid(dsn, "turso", "an in-memory database cannot be shared between processes")
  return Either.right({
    _tag: "Turso",
    path: memory ? ":memory:" : path,
    multiprocess,
    redacted: redact(`turso:${memory ? ":memory:" : path}${multiprocess ? "?multiprocess=1" : ""}`)
  })
}

/**
 * Parses a DSN. Accepted forms: `sqlite:PATH`, `sqlite::memory:`, `:memory:` or a bare path
 * (SQLite); `postgres://…` / `postgresql://…`; `libsql://…` (auth token from `?authToken=` or
 * `authToken`, usually read from `LIBSQL_AUTH_TOKEN`) and `file:…` (local libSQL);
 * `pglite:PATH` / `pglite:memory`; `turso:PATH[?multiprocess=1]` / `turso::memory:` (the Turso
 * engine). Anything else is an `InvalidDsn` that names the scheme.
 */
export const parse = (
  dsn: string,
  options: { readonly authToken?: Redacted.Redacted<string> | undefined } = {}
): Either.Either<Dsn, InvalidDsn> => {
  const trimmed = dsn.trim()
  if (trimmed === "") return invalid(dsn, "", "the DSN is empty")
  if (trimmed === ":memory:")
    return Either.right({ _tag: "Sqlite", filename: ":memory:", redacted: ":memory:" })
  const match = schemePattern.exec(trimmed)
  if (match === null || match[1] === undefined) return parseSqlite(trimmed, trimmed)
  const scheme = match[1].toLowerCase()
  const rest = trimmed.slice(match[0].length)
  switch (scheme) {
    case "sqlite":
    case "sqlite3":
      return parseSqlite(trimmed, rest)
    case "postgres":
    case "postgresql":
      return parsePostgres(trimmed, scheme)
    case "libsql":
    case "file":
      return parseLibsql(trimmed, scheme, options.authToken)
    case "pglite":
      return parsePglite(trimmed, rest)
    case "turso":
      return parseTurso(trimmed, rest)
    default:
      return invalid(
        trimmed,
        scheme,
        "unknown scheme; use sqlite:, postgres://, postgresql://, libsql://, file:, pglite: or turso:"
      )
  }
}
