/**
 * A real `keel serve` (the built binary) on a fresh database of one backend, with a token, on a
 * free port, its dashboard sampling every second; plus `api`, a minimal HTTP client for seeding and
 * for checking what the dashboard did through the API itself.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { TestDatabase } from "@keel/testkit"
import { Effect, Exit, Scope } from "effect"
import { cliRoot } from "./Builds.js"

/** The backends the browser suite runs on: SQLite and PostgreSQL (narrowed by `KEEL_TEST_BACKENDS`). */
export const kinds: ReadonlyArray<TestDatabase.Kind> = TestDatabase.kinds.filter(
  (kind) => kind === "sqlite" || kind === "postgres"
)

const repository = join(cliRoot, "..", "..")

/**
 * What runs the server: the built `keel serve` (what users run), or with `KEEL_UI_SERVER=main` the
 * server's own `src/main.ts` through tsx (`pnpm start`), for working on the dashboard while the CLI
 * does not build.
 */
const entry: ReadonlyArray<string> =
  process.env.KEEL_UI_SERVER === "main"
    ? ["--import", "tsx", join(repository, "apps", "server", "src", "main.ts")]
    : [join(cliRoot, "bin", "keel.cjs"), "serve"]

/** The token the suite's servers run with. */
export const token = "keel-ui-test-token-0123456789"

/** A running server. */
export interface Served {
  readonly url: string
  readonly dir: string
  /** The server's database. */
  readonly dsn: string
  readonly child: ChildProcess
  readonly output: () => string
  /** Stops the server (SIGTERM, then waits) and removes its database. */
  readonly stop: () => Promise<void>
}

const environment = (env: Readonly<Record<string, string>>): NodeJS.ProcessEnv => {
  const base: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith("KEEL_")) base[key] = value
  }
  return { ...base, ...env }
}

const listeningUrl = (output: string): string | undefined => {
  for (const line of output.split("\n")) {
    if (!line.startsWith("{")) continue
    try {
      const parsed: unknown = JSON.parse(line)
      if (
        typeof parsed !== "object" ||
        parsed === null ||
        !("message" in parsed) ||
        !("annotations" in parsed)
      ) {
        continue
      }
      const { message, annotations } = parsed
      if (typeof message !== "string" || !message.startsWith("Keel listening on")) continue
      if (typeof annotations === "object" && annotations !== null && "url" in annotations) {
        const url = annotations.url
        if (typeof url === "string") return url
      }
    } catch {
      // not a log line
    }
  }
  return undefined
}

/**
 * Starts `keel serve` on a fresh `kind` database; reservations come from `range` (each backend
 * its own, as the backends run at once and a reservation probes its port by binding it).
 */
export const serve = async (
  kind: TestDatabase.Kind,
  range: { readonly min: number; readonly max: number }
): Promise<Served> => {
  const scope = Effect.runSync(Scope.make())
  const database = await Effect.runPromise(Scope.extend(TestDatabase.fresh(kind), scope))
  const config = join(database.dir, "reservation.json")
  writeFileSync(config, JSON.stringify({ range, occupancy: { timeoutMs: 5_000 } }))
  mkdirSync(join(database.dir, "data"))
  const child = spawn(process.execPath, entry, {
    cwd: repository,
    env: environment({
      KEEL_PORT: "0",
      KEEL_DB: database.dsn,
      KEEL_TOKEN: token,
      KEEL_LOG_FORMAT: "json",
      KEEL_RESERVATION_CONFIG: config,
      KEEL_DASHBOARD_SAMPLE_INTERVAL: "1 second",
      XDG_DATA_HOME: join(database.dir, "data")
    }),
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    output += chunk
  })
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    output += chunk
  })
  const exited = new Promise<void>((resolve) => child.on("close", () => resolve()))
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM")
    await exited
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
  const deadline = Date.now() + 60_000
  for (;;) {
    const url = listeningUrl(output)
    if (url !== undefined)
      return { url, dir: database.dir, dsn: database.dsn, child, output: () => output, stop }
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop()
      throw new Error(`keel serve did not start:\n${output}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** One API request with the token; the parsed JSON body (undefined for an empty one), failing on an error status. */
export const api = async (server: Served, method: string, path: string, body?: unknown): Promise<unknown> => {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" })
    },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const text = await response.text()
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`)
  return text === "" ? undefined : JSON.parse(text)
}

/** A field of a JSON object answer, failing the test when the answer is not an object. */
export const field = (value: unknown, name: string): unknown => {
  if (typeof value !== "object" || value === null || !(name in value)) {
    throw new Error(`expected an object with ${name}: ${JSON.stringify(value)}`)
  }
  return Reflect.get(value, name)
}
