import { createServer } from "node:net"
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { Backend, Database, DbError, Dsn } from "@keel/sql"
import { Cause, ConfigProvider, Effect, Either, FastCheck, Layer, Logger, LogLevel, Redacted } from "effect"
import * as TestDatabase from "./support/TestDatabase.js"

/** The parsed DSN, or a test failure naming why it was refused. */
const accepted = (dsn: string): Dsn.Dsn =>
  Either.getOrThrowWith(
    Dsn.parse(dsn),
    (error) => new Error(`refused ${JSON.stringify(dsn)}: ${error.message}`)
  )

/** The `InvalidDsn` for a DSN that must be refused. */
const refused = (dsn: string): Dsn.InvalidDsn =>
  Either.getOrThrowWith(
    Either.flip(Dsn.parse(dsn)),
    (parsed) => new Error(`accepted ${JSON.stringify(dsn)} as ${parsed._tag}`)
  )

/** Every printable form of an outcome of `Dsn.parse`: where a secret could surface. */
const printed = (dsn: string): ReadonlyArray<string> =>
  Either.match(Dsn.parse(dsn), {
    onLeft: (error) => [error.message, error.dsn, JSON.stringify(error), String(error)],
    onRight: (parsed) => [parsed.redacted, JSON.stringify(parsed), String(parsed)]
  })

// ---------------------------------------------------------------------------------------------
// DSNs that carry a secret, for the property tests.

/** A form of DSN, built around a secret. */
type Form = (secret: string) => string

/** PostgreSQL URLs with a (percent-encoded) password, valid and not. */
const postgresForms: ReadonlyArray<Form> = [
  (s) => `postgres://keel:${encodeURIComponent(s)}@db.internal:5432/keel`,
  (s) => `postgresql://keel:${encodeURIComponent(s)}@db.internal/keel?sslmode=require`,
  (s) => `postgres://keel@db.internal/keel?password=${encodeURIComponent(s)}&application_name=keel`,
  (s) => `postgres://keel@db.internal/keel?sslpassword=${encodeURIComponent(s)}`,
  (s) => `postgres://keel:${encodeURIComponent(s)}@db.internal:0/keel`,
  (s) => `postgres://keel:${encodeURIComponent(s)}@db.internal:70000/keel`,
  (s) => `postgresql://keel:${encodeURIComponent(s)}@/keel`
]

/** Remote libSQL URLs with a (percent-encoded) token, valid and not. */
const libsqlForms: ReadonlyArray<Form> = [
  (t) => `libsql://db.example.io?authToken=${encodeURIComponent(t)}`,
  (t) => `libsql://db.example.io?tls=0&auth_token=${encodeURIComponent(t)}`,
  (t) => `libsql://db.example.io:99999?authToken=${encodeURIComponent(t)}`
]

/** Strings that are not usable DSNs but contain `user:SECRET@`, the secret written raw. */
const malformedForms: ReadonlyArray<Form> = [
  (s) => `mysql://user:${s}@db.internal/keel`,
  (s) => `postgres://user:${s}@`,
  (s) => `postgres://user:${s}@db.internal:70000/keel`,
  (s) => `postgresql://user:${s}@:5432/keel`,
  (s) => `libsql://user:${s}@`,
  (s) => `redis://user:${s}@[::1/0`,
  (s) => `mysql:user:${s}@tcp(127.0.0.1:3306)/keel`,
  (s) => `postgres:user:${s}@db.internal/keel`,
  (s) => `user:${s}@tcp(127.0.0.1:3306)/keel`
]

const build = (forms: ReadonlyArray<Form>, index: number, secret: string): string => {
  const form = forms[index]
  if (form === undefined) throw new Error(`no DSN form ${index}`)
  return form(secret)
}

/** What can show a DSN: `Dsn.redact` and every printable form of the parse outcome. */
const shown = (dsn: string): ReadonlyArray<string> => [Dsn.redact(dsn), ...printed(dsn)]

/**
 * The text around the secrets: everything shown for each form, with a placeholder secret masked.
 * A leak check only means something when the secret is not part of that text (a password "keel"
 * would be "found" in the database name), nor made of the mask `***` itself.
 */
const placeholder = "Qz9Xw7Vb"
const fixedText = [
  ...[...postgresForms, ...libsqlForms, ...malformedForms].flatMap((form) =>
    shown(form(placeholder)).map((text) => text.split(placeholder).join("***"))
  ),
  "password PASSWORD pwd token authToken auth_token secret api_key sslpassword = : ",
  "connection failed user=keel host=db.internal port=5432 sslmode=require"
].join("\n")

const meaningful = (secret: string): boolean =>
  secret.trim().length >= 4 && !secret.includes("*") && !fixedText.includes(secret)

/** Arbitrary passwords and tokens: printable ASCII and any Unicode, at least four characters. */
const secretArbitrary = FastCheck.oneof(
  FastCheck.string({ minLength: 4, maxLength: 40 }),
  FastCheck.string({ unit: "grapheme", minLength: 4, maxLength: 16 })
).filter(meaningful)

/**
 * Secrets written raw (unencoded) between `user:` and `@`: no whitespace and none of the
 * characters that end a URL's userinfo (`@ / ? #`), so the text really is `user:SECRET@…`.
 */
const rawSecretArbitrary = FastCheck.string({ minLength: 4, maxLength: 32 })
  .map((secret) => secret.replace(/[\s@/?#*]/g, ""))
  .filter(meaningful)

/** A value of a `key=value` pair: no separator (`& ; ,`), quote or whitespace. */
const pairValueArbitrary = FastCheck.string({ minLength: 4, maxLength: 32 })
  .map((value) => value.replace(/[\s&;,"'*]/g, ""))
  .filter(meaningful)

const expectNoSecret = (texts: ReadonlyArray<string>, secret: string): void => {
  const forms = new Set([secret, encodeURIComponent(secret)].filter(meaningful))
  for (const text of texts) for (const form of forms) expect(text).not.toContain(form)
}

// ---------------------------------------------------------------------------------------------

describe("Dsn.parse accepts every documented form", () => {
  it("sqlite:PATH, sqlite:///absolute, bare paths and :memory: are SQLite files", () => {
    const cases: ReadonlyArray<readonly [string, string]> = [
      ["sqlite:./keel.db", "./keel.db"],
      ["sqlite:data/keel.db", "data/keel.db"],
      ["sqlite:///var/lib/keel/keel.db", "/var/lib/keel/keel.db"],
      ["./keel.db", "./keel.db"],
      ["/tmp/keel.db", "/tmp/keel.db"],
      ["keel.db", "keel.db"],
      [":memory:", ":memory:"],
      ["sqlite::memory:", ":memory:"],
      [Dsn.defaultDsn, "./keel.db"]
    ]
    for (const [dsn, filename] of cases) {
      const parsed = accepted(dsn)
      expect(parsed._tag, dsn).toBe("Sqlite")
      if (parsed._tag === "Sqlite") expect(parsed.filename, dsn).toBe(filename)
    }
  })

  it("postgres:// and postgresql:// are PostgreSQL; the URL is kept whole but Redacted", () => {
    const cases: ReadonlyArray<readonly [string, string, string]> = [
      ["postgres://keel:hunter22@db.internal:5432/keel", "db.internal", "keel"],
      ["postgresql://db.internal/orders", "db.internal", "orders"],
      ["postgres://keel@127.0.0.1/keel?sslmode=require", "127.0.0.1", "keel"],
      ["postgres:///keel?host=/var/run/postgresql", "/var/run/postgresql", "keel"]
    ]
    for (const [dsn, host, database] of cases) {
      const parsed = accepted(dsn)
      expect(parsed._tag, dsn).toBe("Postgres")
      if (parsed._tag === "Postgres") {
        expect(parsed.host, dsn).toBe(host)
        expect(parsed.database, dsn).toBe(database)
        expect(Redacted.value(parsed.url), dsn).toBe(dsn)
        expect(String(parsed.url), dsn).not.toContain("hunter22")
      }
    }
    expect(accepted("postgres://keel:hunter22@db.internal:5432/keel").redacted).toBe(
      "postgres://keel:***@db.internal:5432/keel"
    )
  })

  it("?prepare= on PostgreSQL: true by default, false turns naming off and leaves the URL; anything else is refused", () => {
    const plain = accepted("postgres://keel:hunter22@db.internal/keel?sslmode=require")
    expect(plain._tag === "Postgres" && plain.prepare).toBe(true)
    const off = accepted("postgres://keel:hunter22@db.internal/keel?prepare=false&sslmode=require")
    expect(off._tag === "Postgres" && off.prepare).toBe(false)
    if (off._tag === "Postgres") {
      expect(Redacted.value(off.url)).toBe("postgres://keel:hunter22@db.internal/keel?sslmode=require")
      expect(off.redacted).not.toContain("hunter22")
    }
    const on = accepted("postgres://db.internal/keel?prepare=true")
    expect(on._tag === "Postgres" && on.prepare).toBe(true)
    const refused = Dsn.parse("postgres://keel:hunter22@db.internal/keel?prepare=maybe")
    expect(Either.isLeft(refused) && refused.left.reason).toBe('prepare must be true or false, not "maybe"')
    expect(Either.isLeft(refused) && refused.left.message).not.toContain("hunter22")
  })

  it("libsql:// is remote libSQL; ?authToken= becomes a Redacted token and leaves the URL", () => {
    const parsed = accepted("libsql://keel-db.turso.io?authToken=tok3n-Value")
    expect(parsed._tag).toBe("Libsql")
    if (parsed._tag === "Libsql") {
      expect(parsed.remote).toBe(true)
      expect(parsed.url).toBe("libsql://keel-db.turso.io")
      expect(parsed.authToken === undefined ? undefined : Redacted.value(parsed.authToken)).toBe(
        "tok3n-Value"
      )
      expect(parsed.redacted).not.toContain("tok3n-Value")
    }
  })

  it("a remote libSQL DSN without a token takes the configured one; a token in the DSN wins", () => {
    const configured = { authToken: Redacted.make("from-environment") }
    const bare = accepted("libsql://keel-db.turso.io")
    expect(bare._tag === "Libsql" && bare.authToken).toBe(undefined)
    const fromOptions = Either.getOrThrow(Dsn.parse("libsql://keel-db.turso.io", configured))
    const fromDsn = Either.getOrThrow(Dsn.parse("libsql://keel-db.turso.io?authToken=in-the-dsn", configured))
    const tokenOf = (dsn: Dsn.Dsn) =>
      dsn._tag === "Libsql" && dsn.authToken !== undefined ? Redacted.value(dsn.authToken) : undefined
    expect(tokenOf(fromOptions)).toBe("from-environment")
    expect(tokenOf(fromDsn)).toBe("in-the-dsn")
  })

  it("file:PATH is local libSQL and keeps the path as given", () => {
    for (const dsn of ["file:./local.db", "file:/tmp/keel/local.db", "file:///tmp/keel/local.db"]) {
      const parsed = accepted(dsn)
      expect(parsed._tag, dsn).toBe("Libsql")
      if (parsed._tag === "Libsql") {
        expect(parsed.remote, dsn).toBe(false)
        expect(parsed.url, dsn).toBe(dsn)
        expect(parsed.authToken, dsn).toBe(undefined)
      }
    }
  })

  it("pglite:PATH is a PGlite data directory; pglite:memory is in memory", () => {
    const onDisk = accepted("pglite:./pgdata")
    expect(onDisk._tag === "Pglite" && onDisk.dataDir).toBe("./pgdata")
    const absolute = accepted("pglite:///var/lib/keel/pgdata")
    expect(absolute._tag === "Pglite" && absolute.dataDir).toBe("/var/lib/keel/pgdata")
    const memory = accepted("pglite:memory")
    expect(memory._tag).toBe("Pglite")
    expect(memory._tag === "Pglite" && memory.dataDir).toBe(undefined)
    expect(memory.redacted).toBe("pglite:memory")
  })

  it("the printable form of a DSN without secrets names the same database", () => {
    for (const dsn of ["sqlite:./keel.db", "sqlite:/tmp/keel.db", "postgres://db.internal:5432/keel"]) {
      expect(accepted(dsn).redacted, dsn).toContain(dsn.replace(/^sqlite:/, ""))
    }
    // A relative libSQL file must not be printed as a different, absolute one.
    for (const dsn of ["file:./local.db", "file:data/local.db"]) {
      expect(accepted(dsn).redacted, dsn).toContain(dsn.slice("file:".length))
    }
  })
})

describe("Dsn.parse refuses what it cannot use, with a typed InvalidDsn", () => {
  const cases: ReadonlyArray<readonly [string, string]> = [
    ["mysql://keel:Hunter2-Pass@db.internal/keel", "mysql"],
    ["http://keel:Hunter2-Pass@db.internal/keel", "http"],
    ["https://db.internal/keel", "https"],
    ["redis://:Hunter2-Pass@cache.internal:6379", "redis"],
    ["", ""],
    ["   ", ""],
    ["postgres://", "postgres"],
    ["postgres:///keel", "postgres"],
    ["postgresql://keel:Hunter2-Pass@/keel", "postgresql"],
    ["postgres://keel:Hunter2-Pass@db.internal:0/keel", "postgres"],
    ["postgres://keel:Hunter2-Pass@db.internal:70000/keel", "postgres"],
    ["libsql://", "libsql"],
    ["pglite:", "pglite"],
    ["pglite://", "pglite"]
  ]
  for (const [dsn, scheme] of cases) {
    it(`${JSON.stringify(dsn)} is an InvalidDsn naming the scheme "${scheme}" and not the password`, () => {
      const error = refused(dsn)
      expect(error._tag).toBe("InvalidDsn")
      expect(error.scheme).toBe(scheme)
      expect(error.message).toContain(`"${scheme}"`)
      expect(error.reason.length).toBeGreaterThan(0)
      expectNoSecret(shown(dsn), "Hunter2-Pass")
    })
  }
})

describe("secrets never survive redaction", () => {
  it.prop(
    "a password in a postgres URL appears in neither Dsn.redact, the parsed DSN nor the InvalidDsn",
    { secret: secretArbitrary, form: FastCheck.integer({ min: 0, max: postgresForms.length - 1 }) },
    ({ secret, form }) => {
      expectNoSecret(shown(build(postgresForms, form, secret)), secret)
    },
    { fastCheck: { numRuns: 300 } }
  )

  it.prop(
    "a valid postgres URL keeps its password, and prints it as ***",
    { secret: secretArbitrary },
    ({ secret }) => {
      const dsn = `postgres://keel:${encodeURIComponent(secret)}@db.internal:5432/keel`
      const parsed = accepted(dsn)
      expect(parsed._tag === "Postgres" && Redacted.value(parsed.url)).toBe(dsn)
      expect(parsed.redacted).toBe("postgres://keel:***@db.internal:5432/keel")
    },
    { fastCheck: { numRuns: 200 } }
  )

  it.prop(
    "a libSQL ?authToken= appears in neither Dsn.redact, the parsed DSN nor the InvalidDsn",
    { token: secretArbitrary, form: FastCheck.integer({ min: 0, max: libsqlForms.length - 1 }) },
    ({ token, form }) => {
      expectNoSecret(shown(build(libsqlForms, form, token)), token)
    },
    { fastCheck: { numRuns: 300 } }
  )

  it.prop(
    "a libSQL token round-trips into the Redacted authToken and out of the URL",
    { token: secretArbitrary },
    ({ token }) => {
      const parsed = accepted(`libsql://db.example.io?authToken=${encodeURIComponent(token)}`)
      expect(
        parsed._tag === "Libsql" && parsed.authToken !== undefined && Redacted.value(parsed.authToken)
      ).toBe(token)
      expect(parsed._tag === "Libsql" && parsed.url).toBe("libsql://db.example.io")
    },
    { fastCheck: { numRuns: 200 } }
  )

  it.prop(
    "a malformed DSN containing user:SECRET@ never shows the secret, in Dsn.redact or the InvalidDsn",
    { secret: rawSecretArbitrary, form: FastCheck.integer({ min: 0, max: malformedForms.length - 1 }) },
    ({ secret, form }) => {
      const dsn = build(malformedForms, form, secret)
      expect(Either.isLeft(Dsn.parse(dsn))).toBe(true)
      expectNoSecret(shown(dsn), secret)
    },
    { fastCheck: { numRuns: 300 } }
  )

  it("a DSN whose user:password@ has no // (Go-style MySQL, a mistyped scheme) is refused without the password", () => {
    for (const dsn of [
      "user:Hunter2-Pass@tcp(127.0.0.1:3306)/keel",
      "mysql:user:Hunter2-Pass@tcp(127.0.0.1:3306)/keel",
      "postgres:keel:Hunter2-Pass@db.internal/keel"
    ]) {
      expect(refused(dsn)._tag).toBe("InvalidDsn")
      expectNoSecret(shown(dsn), "Hunter2-Pass")
    }
  })

  const keyArbitrary = FastCheck.constantFrom(
    "password",
    "PASSWORD",
    "pwd",
    "token",
    "authToken",
    "auth_token",
    "secret",
    "api_key",
    "sslpassword"
  )
  const fillerArbitrary = FastCheck.constantFrom(
    "connection failed",
    "user=keel",
    "host=db.internal",
    "port=5432",
    "sslmode=require",
    ""
  )

  it.prop(
    "Dsn.scrub removes the value of every password=/token=… pair in free text",
    {
      pairs: FastCheck.array(
        FastCheck.record({
          key: keyArbitrary,
          separator: FastCheck.constantFrom("=", ": ", " = "),
          value: pairValueArbitrary,
          filler: fillerArbitrary,
          delimiter: FastCheck.constantFrom(" ", "&", "; ", ", ", "\n")
        }),
        { minLength: 1, maxLength: 5 }
      )
    },
    ({ pairs }) => {
      const text = pairs
        .map(
          ({ key, separator, value, filler, delimiter }) => `${filler}${delimiter}${key}${separator}${value}`
        )
        .join(" ")
      const scrubbed = Dsn.scrub(text)
      for (const { value } of pairs) expect(scrubbed).not.toContain(value)
      expect(scrubbed).toContain("***")
    },
    { fastCheck: { numRuns: 300 } }
  )

  it.prop(
    "Dsn.scrub removes every given literal secret, wherever it appears",
    {
      secrets: FastCheck.array(secretArbitrary, { minLength: 1, maxLength: 4 }),
      around: FastCheck.array(FastCheck.string({ maxLength: 12 }), { minLength: 5, maxLength: 5 })
    },
    ({ secrets, around }) => {
      const text = around.map((filler, index) => `${filler}${secrets[index % secrets.length] ?? ""}`).join("")
      const scrubbed = Dsn.scrub(text, secrets)
      for (const secret of secrets) expect(scrubbed).not.toContain(secret)
    },
    { fastCheck: { numRuns: 300 } }
  )

  it("Dsn.scrub leaves text without secrets alone", () => {
    const text = "connect ECONNREFUSED 127.0.0.1:5432 (user=keel host=db.internal)"
    expect(Dsn.scrub(text, ["S3cretPassw0rd"])).toBe(text)
  })
})

// ---------------------------------------------------------------------------------------------
// End to end: opening a database whose DSN carries a secret.

const password = "S3cretPassw0rd"
const token = "tok3n-Secret"
const secrets = [password, token]

/** Opens the database (and runs one query) then closes it. */
const openAndQuery = (dsn: string, options?: Database.Options) =>
  Effect.provide(
    Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1 AS one`),
    Database.layer(dsn, options)
  )

/** Every way the failure could be shown to a person: message, JSON, string, and the rendered cause. */
const renderings = (error: unknown): ReadonlyArray<string> => [
  error instanceof Error ? error.message : "",
  JSON.stringify(error),
  String(error),
  Cause.pretty(Cause.fail(error))
]

/** A TCP port on 127.0.0.1 that nothing listens on (it was free a moment ago). */
const closedPort = Effect.async<number>((resume) => {
  const server = createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

/**
 * Runs `effect` with every log line, at every level, collected in logfmt and JSON form, as an
 * application would print it. The failure is logged too, as `NodeRuntime.runMain` would.
 */
const withCapturedLogs = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.suspend(() => {
    const lines: Array<string> = []
    const collector = Logger.map(Logger.zip(Logger.logfmtLogger, Logger.jsonLogger), ([text, json]) => {
      lines.push(text, json)
    })
    const logging = Layer.merge(
      Logger.replace(Logger.defaultLogger, collector),
      Logger.minimumLogLevel(LogLevel.All)
    )
    return effect.pipe(
      Effect.tapErrorCause((cause) => Effect.logError("opening the database failed", cause)),
      Effect.exit,
      Effect.map((exit) => ({ exit, lines })),
      Effect.provide(logging),
      Logger.withMinimumLogLevel(LogLevel.All)
    )
  })

const hasPostgres = TestDatabase.kinds.includes("postgres")

/** The test server's URL with `password` added (the server trusts local connections). */
const postgresWithPassword = (): string => {
  const url = new URL(TestDatabase.postgresAdminUrl)
  url.password = password
  return url.toString()
}

describe("secrets in errors and logs, end to end", () => {
  it.live("a postgres DSN with a password that cannot connect fails with a typed DbError without it", () =>
    Effect.gen(function* () {
      const error = yield* openAndQuery(`postgres://postgres:${password}@127.0.0.1:1/x`).pipe(Effect.flip)
      expect(DbError.isDbError(error)).toBe(true)
      expect(error._tag).toBe("Unavailable")
      for (const text of renderings(error)) expect(text).not.toContain(password)
    })
  )

  it.live("a DSN read from KEEL_DB with a password fails without showing it", () =>
    Effect.gen(function* () {
      const config = ConfigProvider.fromMap(
        new Map([["KEEL_DB", `postgres://keel:${password}@127.0.0.1:1/x`]])
      )
      const error = yield* Effect.provide(
        Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1 AS one`),
        Database.layerConfig()
      ).pipe(Effect.withConfigProvider(config), Effect.flip)
      expect(DbError.isDbError(error)).toBe(true)
      for (const text of renderings(error)) expect(text).not.toContain(password)
    })
  )

  it.live("a remote libSQL DSN with a token that cannot connect fails typed, without the token", () =>
    Effect.gen(function* () {
      const port = yield* closedPort
      for (const dsn of [
        `libsql://127.0.0.1:1?authToken=${token}`,
        `libsql://127.0.0.1:${port}?authToken=${token}`,
        `libsql://127.0.0.1:${port}?tls=0&authToken=${token}`
      ]) {
        const error = yield* openAndQuery(dsn).pipe(Effect.flip)
        expect(DbError.isDbError(error), dsn).toBe(true)
        for (const text of renderings(error)) expect(text, dsn).not.toContain(token)
      }
    })
  )

  it.live("a remote libSQL token given as an option never shows in the failure", () =>
    Effect.gen(function* () {
      const port = yield* closedPort
      const error = yield* openAndQuery(`libsql://127.0.0.1:${port}?tls=0`, {
        authToken: Redacted.make(token)
      }).pipe(Effect.flip)
      expect(DbError.isDbError(error)).toBe(true)
      for (const text of renderings(error)) expect(text).not.toContain(token)
    })
  )

  it.live("no log line carries a secret while databases open and fail to open", () =>
    Effect.gen(function* () {
      const port = yield* closedPort
      const failing = [
        `postgres://postgres:${password}@127.0.0.1:1/x`,
        `postgresql://postgres:${password}@127.0.0.1:${port}/x?sslmode=disable`,
        `libsql://127.0.0.1:${port}?tls=0&authToken=${token}`,
        `mysql://keel:${password}@db.internal/keel`,
        `postgres://keel:${password}@db.internal:70000/keel`
      ]
      const lines: Array<string> = []
      for (const dsn of failing) {
        const captured = yield* withCapturedLogs(openAndQuery(dsn))
        expect(captured.exit._tag, dsn).toBe("Failure")
        lines.push(...captured.lines)
      }
      const succeeding = yield* withCapturedLogs(
        Effect.scoped(
          Effect.flatMap(TestDatabase.fresh("libsql"), (info) =>
            openAndQuery(info.dsn, { authToken: Redacted.make(token) })
          )
        )
      )
      expect(succeeding.exit._tag).toBe("Success")
      lines.push(...succeeding.lines)
      if (hasPostgres) {
        const opened = yield* withCapturedLogs(openAndQuery(postgresWithPassword()))
        expect(opened.exit._tag).toBe("Success")
        lines.push(...opened.lines)
        // The successful open is logged (at debug), so the collector did see Keel's lines.
        expect(opened.lines.some((line) => line.includes("opened postgres://"))).toBe(true)
      }
      expect(lines.some((line) => line.includes("opening the database failed"))).toBe(true)
      expect(lines.some((line) => line.includes("opened"))).toBe(true)
      for (const line of lines) for (const secret of secrets) expect(line).not.toContain(secret)
    })
  )

  it.live.runIf(hasPostgres)("a postgres DSN with a password opens, and its Backend prints it redacted", () =>
    Effect.gen(function* () {
      const dsn = postgresWithPassword()
      const rows = yield* openAndQuery(dsn)
      expect(rows).toEqual([{ one: 1 }])
      const backend = yield* Effect.provide(Backend.Backend, Database.layer(dsn))
      expect(backend.dsn).toContain("postgres:***@")
      expect(backend.dsn).not.toContain(password)
    })
  )
})

describe("Dsn.scrub on hostile text", () => {
  it("takes linear time on long runs of characters and never prints a long token", () => {
    for (const text of [
      "a".repeat(60_000),
      "a:".repeat(30_000),
      `password${"x".repeat(60_000)}`,
      "x".repeat(600)
    ]) {
      const started = performance.now()
      const scrubbed = Dsn.scrub(`before ${text} after`)
      expect(performance.now() - started).toBeLessThan(200)
      expect(scrubbed).toBe(`before [${text.length} characters] after`)
    }
    const short = "postgres://keel:hunter2@db/x ".repeat(2_000)
    const started = performance.now()
    expect(Dsn.scrub(short)).not.toContain("hunter2")
    expect(performance.now() - started).toBeLessThan(200)
  })
})
