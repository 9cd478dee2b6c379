/**
 * Connection set-up, verified: the settings Keel's guarantees rest on are applied and then read
 * back, and start-up fails with `SetupFailed` when one did not take.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"
import { classify, type DbError, SetupFailed } from "../DbError.js"
import * as Retry from "../Retry.js"

const firstValue = (rows: ReadonlyArray<unknown>): string => {
  const row = rows[0]
  if (!Predicate.isRecord(row)) return "nothing"
  const value = Object.values(row)[0]
  return String(value).toLowerCase()
}

/** The SQLite settings Keel applies to every connection it opens. */
export interface SqliteSettings {
  /**
   * How long SQLite itself waits for a lock. better-sqlite3 waits *synchronously*, blocking the
   * event loop, so this stays short; longer waits are asynchronous retries (`Retry`).
   */
  readonly busyTimeoutMs: number
  /** `:memory:` databases have no WAL; their journal mode is not checked. */
  readonly memory: boolean
}

/** The longest busy_timeout Keel accepts: better-sqlite3 waits synchronously, freezing the event loop. */
export const maxBusyTimeoutMs = 60_000

/** Checks a busy timeout (milliseconds) before it is used: an integer from 0 to 60000. */
export const validBusyTimeout = (timeout: number, backend: string): Effect.Effect<number, SetupFailed> =>
  Number.isInteger(timeout) && timeout >= 0 && timeout <= maxBusyTimeoutMs
    ? Effect.succeed(timeout)
    : Effect.fail(
        new SetupFailed({
          backend,
          setting: "busy_timeout",
          expected: `an integer from 0 to ${maxBusyTimeoutMs} ms`,
          actual: String(timeout)
        })
      )

/**
 * SQLite's page cache per connection, in KiB: SQLite's own default. better-sqlite3 is built with
 * 16 MB instead, which fills as a queue's archive grows, and stays resident: over 200,000 messages
 * (a 26 MB file) the queue process's RSS after a full GC rose from 116 to 144 MiB with 16 MB, and
 * showed no trend with 2 MB (`bench/src/queue/memory.ts`). The hot pages (the ready index, the
 * archive's tail) fit; the OS page cache serves the rest.
 */
export const pageCacheKiB = 2000

/**
 * The per-connection settings, applied to every new SQLite/libSQL connection before its first
 * statement. PRAGMA takes no bind parameters: the busy timeout is the only value written into the
 * text, and it has passed `validBusyTimeout`.
 */
export const connectionPragmas = (busyTimeoutMs: number): ReadonlyArray<string> => [
  `PRAGMA busy_timeout = ${Math.trunc(busyTimeoutMs)}`,
  "PRAGMA foreign_keys = ON",
  "PRAGMA synchronous = NORMAL",
  `PRAGMA cache_size = -${pageCacheKiB}`
]

/**
 * Running and reading a PRAGMA on `client`, each retried as a read (every setting here is
 * idempotent, and any can meet a lock on a fresh file); `read` returns the first value as text.
 */
const pragmas = (client: SqlClient.SqlClient) => ({
  pragma: (text: string) =>
    Retry.run(Retry.read(Effect.mapError(client.unsafe(text).raw, (error) => classify(error)))),
  read: (text: string) =>
    Retry.run(
      Retry.read(
        Effect.map(
          Effect.mapError(client.unsafe<Record<string, unknown>>(text), (error) => classify(error)),
          firstValue
        )
      )
    )
})

/**
 * Applies WAL (persistent in the file), the per-connection pragmas, and reads every setting back:
 * journal_mode=wal, foreign_keys=1, busy_timeout, synchronous=1 (NORMAL).
 */
export const configureSqlite = (
  client: SqlClient.SqlClient,
  backend: string,
  settings: SqliteSettings
): Effect.Effect<void, DbError | SetupFailed> =>
  Effect.gen(function* () {
    const timeout = yield* validBusyTimeout(settings.busyTimeoutMs, backend)
    // Every statement here is idempotent, and any of them can meet a lock on a fresh file (the
    // first statement reads the schema; another process may be switching the file to WAL).
    const { pragma, read } = pragmas(client)
    const expect = (setting: string, actual: string, expected: string) =>
      actual === expected ? Effect.void : Effect.fail(new SetupFailed({ backend, setting, expected, actual }))

    // busy_timeout first, so the rest waits briefly for a lock instead of failing at once.
    yield* pragma(`PRAGMA busy_timeout = ${timeout}`)
    if (!settings.memory) {
      // Switching to WAL needs a moment of exclusive access; another process opening the same
      // fresh file at once makes it busy. Setting a journal mode is idempotent: retry it.
      const mode = yield* read("PRAGMA journal_mode = WAL")
      yield* expect("journal_mode", mode, "wal")
    }
    // `synchronous` needs the file lock too (busy while another process switches to WAL); every
    // setting here is idempotent, so each is retried.
    yield* Effect.forEach(connectionPragmas(timeout), pragma, { discard: true })
    yield* expect("foreign_keys", yield* read("PRAGMA foreign_keys"), "1")
    yield* expect("busy_timeout", yield* read("PRAGMA busy_timeout"), String(timeout))
    yield* expect("synchronous", yield* read("PRAGMA synchronous"), "1")
  })

/**
 * Sets up and verifies a Turso engine connection: foreign keys on (the engine's default is off),
 * busy_timeout 0 (the engine waits on the Node thread, where the lock holder could never finish —
 * waits are the session's and the retry schedule's), journal_mode wal (a file someone switched to
 * the engine's beta `mvcc` mode is refused: Keel's transactions rest on WAL's one writer), and
 * synchronous not OFF. Keel leaves synchronous at the engine's FULL: 0.4.x turns NORMAL into OFF.
 * It issues nothing known to crash the engine (no `auto_vacuum`, see TursoClient.ts).
 */
export const configureTurso = (
  client: SqlClient.SqlClient,
  backend: string,
  settings: { readonly memory: boolean }
): Effect.Effect<void, DbError | SetupFailed> =>
  Effect.gen(function* () {
    const { pragma, read } = pragmas(client)
    const expect = (setting: string, actual: string, expected: ReadonlyArray<string>) =>
      expected.includes(actual)
        ? Effect.void
        : Effect.fail(new SetupFailed({ backend, setting, expected: expected.join(" or "), actual }))
    yield* pragma("PRAGMA busy_timeout = 0")
    yield* pragma("PRAGMA foreign_keys = ON")
    yield* expect("foreign_keys", yield* read("PRAGMA foreign_keys"), ["1"])
    yield* expect("busy_timeout", yield* read("PRAGMA busy_timeout"), ["0"])
    if (!settings.memory) yield* expect("journal_mode", yield* read("PRAGMA journal_mode"), ["wal"])
    yield* expect("synchronous", yield* read("PRAGMA synchronous"), ["1", "2"])
  })

/**
 * PostgreSQL always enforces foreign keys unless `session_replication_role` is `replica`, which
 * also silences triggers: refuse to start then.
 */
export const verifyPostgres = (
  client: SqlClient.SqlClient,
  backend: string
): Effect.Effect<void, DbError | SetupFailed> =>
  Effect.gen(function* () {
    const rows = yield* Effect.mapError(client.unsafe("SHOW session_replication_role"), (error) =>
      classify(error)
    )
    const role = firstValue(rows)
    if (role !== "origin") {
      return yield* new SetupFailed({
        backend,
        setting: "session_replication_role (foreign keys)",
        expected: "origin",
        actual: role
      })
    }
  })
