/**
 * The built `keel` binary as a child process, for end-to-end tests: `ensureBuilt` runs the
 * production build once per vitest run (CI starts from a clean clone, without `dist/`), `keel` runs one
 * invocation to completion and `start` a long-running one (consume, serve).
 */
import { type ChildProcess, execFile, spawn, spawnSync } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { TestDatabase } from "@keel/testkit"
import { Effect, Exit, Scope } from "effect"
import { describe, expect } from "vitest"

const root = fileURLToPath(new URL("../..", import.meta.url))

/** The binary under test. */
export const bin = join(root, "bin", "keel.cjs")

/** The backends the end-to-end suites run on: SQLite and PostgreSQL (narrowed by `KEEL_TEST_BACKENDS`). */
export const kinds: ReadonlyArray<TestDatabase.Kind> = TestDatabase.kinds.filter(
  (kind) => kind === "sqlite" || kind === "postgres"
)

/**
 * `describe(name, suite)` for one backend's tests, run at the same time as the other backends':
 * each backend has its own database, handed to its children in their environment, and much of a
 * child's time is its own start-up, which the other backend's children overlap. The tests inside
 * run in order, as written: they share that backend's database.
 */
export const describeBackend = (name: string, suite: () => void): void => {
  describe(name, { concurrent: true }, () => {
    describe.sequential("in order", suite)
  })
}

/** `describeBackend("name [kind]", …)` for each backend of `kinds`. */
export const describeBackends = (name: string, suite: (kind: TestDatabase.Kind) => void): void => {
  for (const kind of kinds) describeBackend(`${name} [${kind}]`, () => suite(kind))
}

const dist = join(root, "dist")

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Builds `dist/` with the package's own build script (what `pnpm --filter @keel/cli build` runs),
 * once per vitest run: test files run in forks of one vitest process (`pool: "forks"` in the root
 * vitest.config.ts), so the first file to get the lock (keyed by that parent's pid) builds and the
 * others wait for its stamp. A failed build fails every file that waited for it.
 */
export const ensureBuilt = async (): Promise<void> => {
  const run = String(process.ppid)
  const stamp = join(dist, `.built-${run}`)
  const failed = join(dist, `.failed-${run}`)
  const lock = join(dist, `.building-${run}`)
  if (existsSync(stamp)) return
  mkdirSync(dist, { recursive: true })
  let owner = false
  try {
    mkdirSync(lock)
    owner = true
  } catch {
    owner = false
  }
  if (owner) {
    try {
      await promisify(execFile)(process.execPath, [join(root, "scripts", "build.mjs")], { cwd: root })
      for (const name of readdirSync(dist)) {
        if (name.startsWith(".built-") || name.startsWith(".failed-"))
          rmSync(join(dist, name), { force: true })
      }
      writeFileSync(stamp, "")
    } catch (error) {
      writeFileSync(failed, error instanceof Error ? error.message : String(error))
      throw error
    } finally {
      rmSync(lock, { recursive: true, force: true })
    }
    return
  }
  const deadline = Date.now() + 120_000
  while (!existsSync(stamp)) {
    if (existsSync(failed)) throw new Error(`the build failed: ${readFileSync(failed, "utf8")}`)
    if (Date.now() > deadline) throw new Error("timed out waiting for the keel build")
    await sleep(100)
  }
}

/** How one invocation ended. */
export interface Result {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/** How to run keel. */
export interface RunOptions {
  /** Extra environment (over this process's, with `KEEL_*` variables removed). */
  readonly env?: Readonly<Record<string, string>>
  /** Written to stdin, which is then closed (default: stdin closed at once). */
  readonly input?: string | Uint8Array
  readonly cwd?: string
}

const environment = (env: Readonly<Record<string, string>> = {}): NodeJS.ProcessEnv => {
  const base: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith("KEEL_") && key !== "LIBSQL_AUTH_TOKEN") base[key] = value
  }
  return { ...base, ...env }
}

/** A running keel process. */
export interface Running {
  readonly child: ChildProcess
  readonly stdout: () => string
  readonly stderr: () => string
  readonly exited: Promise<Result>
}

/** Starts `keel args…`. */
export const start = (args: ReadonlyArray<string>, options: RunOptions = {}): Running => {
  const child = spawn(process.execPath, [bin, ...args], {
    cwd: options.cwd,
    env: environment(options.env),
    stdio: ["pipe", "pipe", "pipe"]
  })
  let stdout = ""
  let stderr = ""
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk
  })
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk
  })
  child.stdin?.on("error", () => undefined)
  child.stdin?.end(options.input ?? "")
  const exited = new Promise<Result>((resolve) => {
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }))
  })
  return { child, stdout: () => stdout, stderr: () => stderr, exited }
}

/** Whether util-linux `script` is installed, to run keel on a pseudo-terminal (`onTerminal`). */
export const terminalAvailable: boolean = spawnSync("script", ["--version"]).status === 0

const shellQuote = (arg: string): string => `'${arg.replaceAll("'", `'\\''`)}'`

/**
 * Runs `keel args…` to completion with stdout on a pseudo-terminal (through `script`), as in an
 * interactive shell. The terminal's output arrives on `stdout` with `\r\n` line ends.
 */
export const onTerminal = (args: ReadonlyArray<string>, options: RunOptions = {}): Promise<Result> =>
  new Promise((resolve) => {
    const command = [process.execPath, bin, ...args].map(shellQuote).join(" ")
    const child = spawn("script", ["-qec", command, "/dev/null"], {
      cwd: options.cwd,
      env: environment(options.env),
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk
    })
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk
    })
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }))
  })

/** Runs `keel args…` to completion. */
export const keel = (args: ReadonlyArray<string>, options: RunOptions = {}): Promise<Result> =>
  start(args, options).exited

/** Parses the one JSON document `--json` prints on stdout. */
export const json = (result: Result): Record<string, unknown> => {
  const lines = result.stdout.split("\n").filter((line) => line.trim() !== "")
  if (lines.length !== 1) {
    throw new Error(
      `expected one JSON line on stdout, got ${lines.length}: ${result.stdout}\n${result.stderr}`
    )
  }
  const parsed: unknown = JSON.parse(lines[0] ?? "")
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new Error(`expected a JSON object: ${result.stdout}`)
  }
  return { ...parsed }
}

/** Waits until `check` holds (polling), or fails after `timeoutMs`. */
export const eventually = async (check: () => boolean, timeoutMs: number, what: string): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** A fresh database of `kind` (a temp SQLite file, or a new PostgreSQL database) and its removal. */
export const freshDatabase = async (
  kind: TestDatabase.Kind
): Promise<TestDatabase.Info & { readonly close: () => Promise<void> }> => {
  const scope = Effect.runSync(Scope.make())
  const info = await Effect.runPromise(Scope.extend(TestDatabase.fresh(kind), scope))
  return { ...info, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

/** The result's stdout, asserting a clean success (exit 0, nothing on stderr). */
export const ok = (result: Result): string => {
  expect(result, result.stderr).toMatchObject({ code: 0, stderr: "" })
  return result.stdout
}

/**
 * The one line a failed command wrote on stderr, asserting the exit code, nothing on stdout, a
 * single `keel: …` line ending in a newline, and no stack trace or ANSI code.
 */
export const failure = (result: Result, code: number): string => {
  expect({ code: result.code, stdout: result.stdout }, result.stderr).toEqual({ code, stdout: "" })
  expect(result.stderr).toMatch(/^keel: [^\n]*\n$/)
  expect(result.stderr).not.toContain("\u001b")
  return result.stderr.slice(0, -1)
}
