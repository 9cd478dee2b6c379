/**
 * The built `keel` binary's global behaviour, whatever the backend: which database it opens
 * (`--db`, `KEEL_DB`, the default file), usage errors (exit 2, one line), `--version`, shell
 * completions, and secrets in a DSN never reaching the terminal.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { version } from "../src/Version.js"
import * as Keel from "./support/Keel.js"

let dir: string

beforeAll(async () => {
  await Keel.ensureBuilt()
  dir = mkdtempSync(join(tmpdir(), "keel-cli-"))
})

afterAll(() => {
  rmSync(dir, { recursive: true, force: true })
})

describe("which database", () => {
  it("defaults to $XDG_DATA_HOME/keel/keel.db; --db (before or after the subcommand) wins over KEEL_DB", async () => {
    const home = join(dir, "data")
    const byDefault = Keel.json(
      await Keel.keel(["db", "migrate", "--json"], { env: { XDG_DATA_HOME: home } })
    )
    const file = join(home, "keel", "keel.db")
    expect(byDefault).toMatchObject({ database: `sqlite:${file}`, backend: "sqlite" })
    expect(existsSync(file)).toBe(true)

    const other = join(dir, "other.db")
    const broken = { KEEL_DB: "nope:not-a-dsn", XDG_DATA_HOME: home }
    const before = await Keel.keel(["--db", `sqlite:${other}`, "db", "status", "--json"], { env: broken })
    expect(Keel.json(before)).toMatchObject({ database: `sqlite:${other}` })
    const after = await Keel.keel(["db", "status", "--json", "--db", `sqlite:${other}`], { env: broken })
    expect(Keel.json(after)).toMatchObject({ database: `sqlite:${other}` })
    expect(Keel.failure(await Keel.keel(["db", "status"], { env: broken }), 2)).toContain("Invalid DSN")
  })
})

describe("usage", () => {
  it("--version prints just the version; --completions prints a shell script", async () => {
    const printed = await Keel.keel(["--version"])
    expect(printed).toMatchObject({ code: 0, stdout: `${version}\n`, stderr: "" })
    const completions = await Keel.keel(["--completions", "bash"])
    expect(completions.code).toBe(0)
    expect(completions.stdout).toContain("_keel_bash_completions")
    expect(completions.stdout).toContain("reserve-group")
  })

  it("bad usage and bad input exit 2 with one line on stderr and change nothing", async () => {
    const env = { KEEL_DB: `sqlite:${join(dir, "usage.db")}` }
    const cases: ReadonlyArray<readonly [ReadonlyArray<string>, RegExp, string?]> = [
      [["port", "reserve", "--no-such-flag"], /no-such-flag/],
      [["queue", "frobnicate"], /subcommand/i],
      [["queue", "send"], /queue/i],
      [["queue", "send", "Not A Queue", "{}"], /queue name/i],
      [["queue", "send", "jobs", "{not json"], /payload/i],
      [["queue", "send-batch", "jobs"], /stdin line 2: not JSON/, '{"ok":1}\n{oops\n'],
      [["port", "reserve", "--ttl", "soon"], /--ttl/],
      [["port", "reserve", "--preferred", "70000"], /port/i],
      [["port", "reserve-group", "=3000"], /TAG/],
      [["cursor", "set", "peer", "abc"], /position/i],
      [["port", "list", "--log-level", "loud"], /^keel: --log-level: expected one of .*warning/],
      [["--log-level"], /^keel: --log-level: needs a level/],
      [["--log-level=", "port", "list"], /--log-level/]
    ]
    const results = await Promise.all(
      cases.map(([args, , input]) => Keel.keel(args, { env, ...(input === undefined ? {} : { input }) }))
    )
    cases.forEach(([args, pattern], index) => {
      const result = results[index]
      if (result === undefined) throw new Error("missing result")
      expect(Keel.failure(result, 2), args.join(" ")).toMatch(pattern)
    })
    const json = await Keel.keel(["queue", "send", "jobs", "{not json", "--json"], { env })
    expect(json.code).toBe(2)
    expect(json.stderr).toMatch(/^[^\n]+\n$/)
    expect(JSON.parse(json.stderr)).toMatchObject({ error: { _tag: "InvalidPayload" }, exitCode: 2 })
    const queues = Keel.json(await Keel.keel(["queue", "list", "--json"], { env }))
    expect(queues).toEqual({ queues: [] })
  })
})

describe("colour", () => {
  const ansiEscape = "\u001b["
  const printing: ReadonlyArray<ReadonlyArray<string>> = [
    ["--help"],
    ["port", "reserve", "--help"],
    ["queue"],
    ["--version"]
  ]

  it("help, usage and --version carry no ANSI codes when stdout is a pipe", async () => {
    const results = await Promise.all(printing.map((args) => Keel.keel(args)))
    results.forEach((result, index) => {
      const what = printing[index]?.join(" ") ?? ""
      expect(result.code, what).toBe(0)
      expect(result.stdout, what).not.toBe("")
      expect(result.stdout + result.stderr, what).not.toContain(ansiEscape)
    })
    expect(results[0]?.stdout).toMatch(/^keel\n\nkeel \d/)
  })

  it.skipIf(!Keel.terminalAvailable)(
    "on a terminal help is coloured, unless NO_COLOR is set (to anything but an empty string)",
    async () => {
      const [coloured, noColour, printed] = await Promise.all([
        Keel.onTerminal(["port", "reserve", "--help"], { env: { NO_COLOR: "" } }),
        Keel.onTerminal(["port", "reserve", "--help"], { env: { NO_COLOR: "1" } }),
        Keel.onTerminal(["--version"], { env: { NO_COLOR: "1" } })
      ])
      expect(coloured.code).toBe(0)
      expect(coloured.stdout).toContain(ansiEscape)
      expect(noColour.code).toBe(0)
      expect(noColour.stdout).toContain("USAGE")
      expect(noColour.stdout).not.toContain(ansiEscape)
      expect(printed.stdout).toBe(`${version}\r\n`)
    }
  )
})

describe("serve", () => {
  it("keel serve starts the HTTP server on the CLI's database and stops cleanly on SIGTERM", async () => {
    const env = { KEEL_DB: `sqlite:${join(dir, "serve.db")}` }
    Keel.ok(await Keel.keel(["cursor", "set", "replica", "7", "--quiet"], { env }))
    const server = Keel.start(["serve", "--host", "127.0.0.1", "--port", "0"], { env })
    let url = ""
    await Keel.eventually(
      () => {
        url = /Keel listening on (http:\/\/[0-9.:]+)/.exec(server.stdout() + server.stderr())?.[1] ?? ""
        return url !== "" || server.child.exitCode !== null
      },
      30_000,
      "keel serve to listen"
    )
    expect(url, server.stdout() + server.stderr()).not.toBe("")
    const health = await fetch(`${url}/health`)
    expect(health.status).toBe(200)
    const cursor = await fetch(`${url}/cursors/replica`)
    expect(await cursor.json()).toMatchObject({ peer: "replica", position: "7" })
    server.child.kill("SIGTERM")
    const stopped = await server.exited
    expect(stopped.code, stopped.stderr).toBe(0)
    expect(stopped.stdout + stopped.stderr).not.toMatch(/\n\s+at /)
  })
})

describe("secrets", () => {
  const password = "Sup3r-S3cret-pw"
  const unreachable = `postgres://keel:${password}@127.0.0.1:1/keel`

  it("a password in --db or KEEL_DB is never printed, with or without --verbose and --json", async () => {
    const runs = await Promise.all([
      Keel.keel(["--db", unreachable, "port", "list"]),
      Keel.keel(["port", "list", "--verbose", "--db", unreachable]),
      Keel.keel(["port", "list", "--json", "--verbose"], { env: { KEEL_DB: unreachable } }),
      Keel.keel([
        "--db",
        `postgres://keel:${password}@127.0.0.1:notaport/keel`,
        "cursor",
        "list",
        "--verbose"
      ]),
      Keel.keel(["--db", `nope://keel:${password}@host/db`, "queue", "list"])
    ])
    const [plain, verbose, json, invalid, scheme] = runs
    for (const result of runs) {
      expect(result.stdout + result.stderr).not.toContain(password)
      expect(result.stderr).not.toMatch(/\n\s+at /)
    }
    if (plain === undefined || verbose === undefined || json === undefined) throw new Error("missing")
    Keel.failure(plain, 1)
    expect(verbose.code).toBe(1)
    expect(verbose.stderr).toContain("Unavailable")
    expect(JSON.parse(json.stderr.split("\n")[0] ?? "")).toMatchObject({
      error: { _tag: "Unavailable" },
      exitCode: 1
    })
    if (invalid === undefined || scheme === undefined) throw new Error("missing")
    expect(invalid.code).toBe(2)
    expect(Keel.failure(scheme, 2)).toContain("keel:***@host")
  })
})
