/**
 * A PostgreSQL server of the test's own: a fresh cluster (`initdb`) in a temp directory on a free
 * port, which the test may stop, start, restart and whose backends it may terminate, without
 * touching the machine's shared server that other test files use at the same moment. The same
 * fault as `pg_ctlcluster … restart` on the shared one, confined to one test.
 *
 * Needs PostgreSQL's server binaries (`/usr/lib/postgresql/<version>/bin`) and either to run as the
 * `postgres` user or as root (then every command runs as `postgres` through `runuser`: initdb
 * refuses root). `available` says whether this machine can; tests skip with that reason otherwise.
 */
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir, userInfo } from "node:os"
import { join } from "node:path"
import { exec } from "@keel/sql/test/Processes"
import type { Scope } from "effect"
import * as Effect from "effect/Effect"
import * as Files from "./Files.js"

const root = "/usr/lib/postgresql"

/** The directory of the newest installed server's binaries, if any. */
const binaries = (): string | undefined => {
  if (!existsSync(root)) return undefined
  const versions = readdirSync(root)
    .filter((name) => existsSync(join(root, name, "bin", "pg_ctl")))
    .sort((a, b) => Number(b) - Number(a))
  return versions[0] === undefined ? undefined : join(root, versions[0], "bin")
}

const postgresIds = (): { readonly uid: number; readonly gid: number } | undefined => {
  try {
    const user = userInfo()
    if (user.username === "postgres") return { uid: user.uid, gid: user.gid }
  } catch {
    // No passwd entry for this uid: not postgres.
  }
  return undefined
}

/** Why this machine cannot run a private server, or undefined when it can. */
export const unavailable = (): string | undefined => {
  if (binaries() === undefined) return `no PostgreSQL server binaries under ${root}`
  if (process.getuid?.() !== 0 && postgresIds() === undefined)
    return "a private PostgreSQL needs root (to run it as postgres) or the postgres user"
  return undefined
}

/** A running private server. */
export interface Server {
  readonly port: number
  /** The admin URL (`postgres` database, trust auth). */
  readonly adminUrl: string
  /** The URL of `database` on this server. */
  readonly url: (database: string) => string
  /** `pg_ctl stop -m fast`: connections are closed, new ones refused. */
  readonly stop: Effect.Effect<void>
  readonly start: Effect.Effect<void>
  /** `pg_ctl restart -m fast`. */
  readonly restart: Effect.Effect<void>
  /** Runs `sql` as the superuser through psql; its output. */
  readonly psql: (sql: string, database?: string) => Effect.Effect<string>
}

/** Runs a command (as postgres when we are root); its stdout. Fails with its stderr. */
/** Runs a server binary, as postgres when we are root (initdb refuses root); its stdout. */
const command = (file: string, args: ReadonlyArray<string>) =>
  process.getuid?.() === 0 ? exec("runuser", ["-u", "postgres", "--", file, ...args]) : exec(file, args)

/**
 * Creates, starts and returns a private server; the scope stops it and removes its files. Dies
 * when the machine cannot (check `unavailable` first).
 */
export const make: Effect.Effect<Server, never, Scope.Scope> = Effect.gen(function* () {
  const bin = binaries()
  if (bin === undefined) return yield* Effect.dieMessage(unavailable() ?? "no PostgreSQL")
  const port = yield* Files.freePort
  const dir = yield* Effect.acquireRelease(
    Effect.sync(() => {
      const made = mkdtempSync(join(tmpdir(), "keel-private-pg-"))
      chmodSync(made, 0o700)
      if (process.getuid?.() === 0) {
        const ids = /^postgres:[^:]*:(\d+):(\d+):/m.exec(readFileSync("/etc/passwd", "utf8"))
        if (ids?.[1] !== undefined && ids[2] !== undefined) chownSync(made, Number(ids[1]), Number(ids[2]))
      }
      return made
    }),
    (made) => Effect.sync(() => rmSync(made, { recursive: true, force: true }))
  )
  const data = join(dir, "data")
  const pgCtl = join(bin, "pg_ctl")
  yield* Effect.orDie(
    command(join(bin, "initdb"), ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
  )
  const options = `-p ${port} -c listen_addresses=127.0.0.1 -k ${dir} -c fsync=off -c max_connections=100`
  const start = Effect.orDie(
    command(pgCtl, ["-D", data, "-o", options, "-w", "-t", "60", "-l", join(dir, "log"), "start"])
  )
  const stop = Effect.orDie(command(pgCtl, ["-D", data, "-m", "fast", "-w", "-t", "60", "stop"]))
  yield* Effect.acquireRelease(start, () => Effect.ignore(stop))
  const url = (database: string) => `postgres://postgres@127.0.0.1:${port}/${database}`
  return {
    port,
    adminUrl: url("postgres"),
    url,
    stop: Effect.asVoid(stop),
    start: Effect.asVoid(start),
    restart: Effect.asVoid(
      Effect.orDie(
        command(pgCtl, [
          "-D",
          data,
          "-o",
          options,
          "-m",
          "fast",
          "-w",
          "-t",
          "60",
          "-l",
          join(dir, "log"),
          "restart"
        ])
      )
    ),
    psql: (sql, database = "postgres") =>
      Effect.orDie(
        command(join(bin, "psql"), [
          "-h",
          "127.0.0.1",
          "-p",
          String(port),
          "-U",
          "postgres",
          "-d",
          database,
          "-Atqc",
          sql
        ])
      )
  }
})
