/**
 * The cold-start paths of the `keel` binary — stored help pages (`HelpPage.ts`) and the fast path
 * of `keel port reserve` (`FastPath.ts`, `Fast.ts`, loaded with V8's code cache by `CodeCache.ts`)
 * — behave as the full command line: the same stdout, stderr and exit code, compared against the
 * same binary with the fast paths turned off (`KEEL_CLI_FAST_PATH=0`). What the fast path
 * recognises is pinned here too: anything it is not sure of goes to the full command line.
 */
import { spawnSync } from "node:child_process"
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync
} from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Command from "@effect/cli/Command"
import type * as Usage from "@effect/cli/Usage"
import { Option } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Cli from "../src/Cli.js"
import { reserve as reserveCommand } from "../src/commands/Port.js"
import * as FastPath from "../src/FastPath.js"
import * as HelpPage from "../src/HelpPage.js"
import * as Keel from "./support/Keel.js"

const argv = (...args: ReadonlyArray<string>) => ["node", "keel", ...args]
const noEnv = {}

describe("what the fast path of keel port reserve recognises", () => {
  it("plain options of port reserve, each once, with their values", () => {
    expect(
      FastPath.reserve(
        argv(
          "port",
          "reserve",
          "-t",
          "web",
          "--path",
          "a b",
          "--preferred",
          "5000",
          "--exclude",
          "5432",
          "--exclude",
          "6000-6010",
          "--json",
          "-q",
          "--force",
          "--ttl",
          "2h"
        ),
        noEnv
      )
    ).toEqual({
      db: undefined,
      json: true,
      quiet: true,
      verbose: false,
      path: "a b",
      tag: "web",
      preferred: 5000,
      range: undefined,
      exclude: ["5432", "6000-6010"],
      project: undefined,
      task: undefined,
      ttl: "2h",
      force: true,
      allowUnrelated: false,
      noOccupancyCheck: false
    })
  })

  it("takes --log-level out wherever it is, as Log.takeLevelFlag does", () => {
    const flags = FastPath.reserve(
      argv("--log-level", "debug", "port", "reserve", "--log-level=x", "--tag", "web"),
      noEnv
    )
    expect(flags?.tag).toBe("web")
    expect(FastPath.reserve(argv("port", "reserve", "--log-level"), noEnv)).toBeUndefined()
  })

  it("leaves anything it is not sure of to the full command line", () => {
    const refused: ReadonlyArray<ReadonlyArray<string>> = [
      ["port", "reserve", "--help"],
      ["port", "reserve", "-h"],
      ["port", "reserve", "--wizard"],
      ["port", "reserve", "--tag=web"],
      ["port", "reserve", "--tag", "web", "--tag", "api"],
      ["port", "reserve", "--tag"],
      ["port", "reserve", "--tag", "--json"],
      ["port", "reserve", "--tag", ""],
      ["port", "reserve", "--tag", " web"],
      ["port", "reserve", "--json", "false"],
      ["port", "reserve", "--force", "YES"],
      ["port", "reserve", "--preferred", "05000"],
      ["port", "reserve", "--preferred", "5e3"],
      ["port", "reserve", "--TAG", "web"],
      ["port", "reserve", "-qt", "web"],
      ["port", "reserve", "extra"],
      ["port", "reserve", "--", "--tag"],
      ["port", "reserve", "--unknown-option"],
      ["--json", "port", "reserve"],
      ["port", "reserve-group", "web"],
      ["port", "list"],
      ["port"],
      [],
      ["port", "reserve", "--db", "postgres://localhost/keel"],
      ["port", "reserve", "--db", "file:keel.db"]
    ]
    for (const args of refused) expect(FastPath.reserve(argv(...args), noEnv), args.join(" ")).toBeUndefined()
  })

  it("an unknown --name (with or without =value) is @effect/cli's unknown-argument error for the first of them; built-in names, positionals and doubtful values are not", () => {
    const unknown = (...args: ReadonlyArray<string>) => FastPath.recognise(argv(...args), noEnv)
    expect(unknown("port", "reserve", "--no-such-option")).toEqual({
      _tag: "UnknownArgument",
      argument: "--no-such-option"
    })
    expect(unknown("port", "reserve", "--tag", "x", "--bogus=1", "--other", "-q")).toEqual({
      _tag: "UnknownArgument",
      argument: "--bogus=1"
    })
    expect(unknown("port", "reserve", "--json", "--bogus")).toEqual({
      _tag: "UnknownArgument",
      argument: "--bogus"
    })
    expect(FastPath.unknownArgumentText("--bogus")).toBe("Received unknown argument: '--bogus'")
    for (const name of FastPath.otherReserveOptions) {
      expect(unknown("port", "reserve", name), name).toBeUndefined()
      expect(unknown("port", "reserve", "--bogus", name), name).toBeUndefined()
    }
    for (const args of [
      ["port", "reserve", "--bogus", "value"],
      ["port", "reserve", "--tag", "--bogus"],
      ["port", "reserve", "--bogus", "--wizard"],
      ["port", "reserve", "--bogus", "--version"],
      ["port", "reserve", "--bogus", "--completions", "bash"],
      ["port", "reserve", "--bogus", "-x"],
      ["port", "reserve", "--bogus", "--tag=web"],
      ["port", "reserve", "--bogus", "--preferred", "abc"],
      ["port", "reserve", "--bogus", "--tag", "a", "--tag", "b"],
      ["port", "reserve", "--bogus", "--"],
      ["port", "list", "--bogus"]
    ]) {
      expect(unknown(...args), args.join(" ")).toBeUndefined()
    }
    expect(
      FastPath.recognise(argv("port", "reserve", "--bogus"), { KEEL_DB: "postgres://h/d" })
    ).toBeUndefined()
    expect(
      FastPath.recognise(argv("port", "reserve", "--bogus"), { KEEL_CLI_FAST_PATH: "0" })
    ).toBeUndefined()
  })

  it("runs only on SQLite, without tracing, and not when turned off", () => {
    const args = argv("port", "reserve", "--tag", "web")
    expect(FastPath.reserve(args, { KEEL_DB: "sqlite:/tmp/keel.db" })).toBeDefined()
    expect(FastPath.reserve(args, { KEEL_DB: "postgres://localhost/keel" })).toBeUndefined()
    expect(FastPath.reserve(args, { KEEL_DB: "" })).toBeUndefined()
    expect(FastPath.reserve(args, { OTEL_EXPORTER_OTLP_ENDPOINT: "http://localhost:4318" })).toBeUndefined()
    expect(FastPath.reserve(args, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://x" })).toBeUndefined()
    expect(FastPath.reserve(args, { KEEL_CLI_FAST_PATH: "0" })).toBeUndefined()
    expect(
      FastPath.reserve(argv("port", "reserve", "--db", "sqlite:/tmp/x.db"), { KEEL_DB: "postgres://h/d" })
    ).toBeDefined()
  })

  it("knows only options port reserve declares, each taking what the declaration says (others go to the full command line)", () => {
    const declared = new Map<string, string>()
    const walk = (usage: Usage.Usage, repeated: boolean): void => {
      switch (usage._tag) {
        case "Named": {
          const kind = Option.match(usage.acceptedValues, {
            onNone: () => "boolean",
            onSome: (values) => (repeated ? "repeated" : values === "integer" ? "integer" : "text")
          })
          declared.set([...usage.names].sort().join(" "), kind)
          return
        }
        case "Optional":
          walk(usage.usage, repeated)
          return
        case "Repeated":
          walk(usage.usage, true)
          return
        case "Alternation":
        case "Concat":
          walk(usage.left, repeated)
          walk(usage.right, repeated)
          return
        default:
          return
      }
    }
    walk(Command.getUsage(reserveCommand), false)
    for (const option of FastPath.reserveOptions) {
      const names = [...option.names].sort().join(" ")
      expect(declared.get(names), names).toBe(option.kind)
    }
    // Every declared option is known to the fast path, run or not: none is ever "unknown" there.
    const known = new Set([
      ...FastPath.reserveOptions.map((option) => [...option.names].sort().join(" ")),
      ...FastPath.otherReserveOptions
    ])
    const options = [...declared.keys()].filter((names) => names.startsWith("-"))
    expect(options.filter((names) => !known.has(names))).toEqual([])
    expect([...known].filter((names) => !declared.has(names))).toEqual([])
  })
})

describe("which help request a stored page answers", () => {
  it("a plain --help or -h anywhere before --, found on the command path as Cli.helpRequest finds it", () => {
    expect(HelpPage.asked(argv("port", "reserve", "--tag", "web", "-h"), noEnv, false)).toBe(true)
    expect(HelpPage.asked(argv("port", "reserve", "--help"), noEnv, true)).toBe(false)
    expect(HelpPage.asked(argv("port", "reserve", "--help"), { NO_COLOR: "1" }, true)).toBe(true)
    expect(HelpPage.asked(argv("port", "reserve", "--", "--help"), noEnv, false)).toBe(false)
    expect(HelpPage.asked(argv("--log-level", "debug", "--help"), noEnv, false)).toBe(false)
    expect(HelpPage.asked(argv("--wizard", "--help"), noEnv, false)).toBe(false)
    expect(HelpPage.asked(argv("--help"), { KEEL_LOG_LEVEL: "debug" }, false)).toBe(false)
    expect(HelpPage.asked(argv("--help"), { KEEL_CLI_FAST_PATH: "0" }, false)).toBe(false)
    const paths = Cli.commandPaths.map((path) => path.join(" "))
    for (const args of [
      ["--json", "port", "reserve", "--tag", "port", "-h"],
      ["port", "--help", "reserve"],
      ["queue", "dead", "list", "--help"],
      ["queue", "dead", "bogus", "--help"],
      ["--tag", "port reserve", "--help"],
      ["--help"]
    ]) {
      const expected = Cli.helpRequest(argv(...args))
        .slice(2, -1)
        .join(" ")
      expect(HelpPage.path(argv(...args), paths), args.join(" ")).toBe(expected)
    }
  })
})

describe("the built binary's cold-start paths", () => {
  let dir = ""
  let dist = ""

  beforeAll(async () => {
    await Keel.ensureBuilt()
    dir = mkdtempSync(join(tmpdir(), "keel-coldstart-"))
    dist = join(Keel.bin, "..", "..", "dist")
    // One port only, far from the other suites' ranges: every run allocates the same port.
    writeFileSync(join(dir, "reservations.json"), JSON.stringify({ range: { min: 28_871, max: 28_871 } }))
  })

  afterAll(() => {
    if (dir !== "") rmSync(dir, { recursive: true, force: true })
  })

  const timestamps = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g

  /** The same command line on its own database, once with the fast paths on and once with them off. */
  const both = async (args: ReadonlyArray<string>, setup: ReadonlyArray<ReadonlyArray<string>> = []) => {
    const results = []
    for (const [name, fast] of [
      ["fast", "1"],
      ["full", "0"]
    ] as const) {
      const home = join(dir, `${name}-${results.length}-${Math.random().toString(36).slice(2)}`)
      const env = {
        KEEL_DB: `sqlite:${join(home, "keel.db")}`,
        KEEL_RESERVATION_CONFIG: join(dir, "reservations.json"),
        XDG_DATA_HOME: home,
        KEEL_CLI_FAST_PATH: fast
      }
      mkdirSync(home, { recursive: true })
      for (const step of setup) await Keel.keel(step, { env, cwd: dir })
      const result = await Keel.keel(args, { env, cwd: dir })
      results.push({
        code: result.code,
        stdout: result.stdout.replace(timestamps, "T").replaceAll(home, "HOME"),
        stderr: result.stderr.replace(timestamps, "T").replaceAll(home, "HOME")
      })
    }
    const [fast, full] = results
    expect(fast, args.join(" ")).toEqual(full)
    return fast
  }

  // Each case starts two to four processes: generous timeouts for a loaded machine.
  const slow = 180_000

  it("port reserve prints the same port and JSON document as the full command line", {
    timeout: slow
  }, async () => {
    expect((await both(["port", "reserve", "--tag", "web"]))?.stdout).toBe("28871\n")
    const refreshed = await both(
      ["port", "reserve", "--tag", "web", "--json", "-q"],
      [["port", "reserve", "--tag", "web"]]
    )
    expect(refreshed?.stdout).toContain('"outcome":"refreshed"')
  })

  it("port reserve fails with the same line and exit code as the full command line", {
    timeout: slow
  }, async () => {
    const full = await both(["port", "reserve", "--tag", "api"], [["port", "reserve", "--tag", "web"]])
    expect(full?.code).toBe(1)
    expect((await both(["port", "reserve", "--tag", "web", "--range", "9-x"]))?.code).toBe(2)
    expect(
      (await both(["port", "reserve", "--tag", "web", "--ttl", "soon", "--json", "--verbose"]))?.code
    ).toBe(2)
    expect((await both(["port", "reserve", "--log-level=loud", "--tag", "web"]))?.code).toBe(2)
    expect((await both(["port", "reserve", "--tag", "web", "--preferred", "70000"]))?.code).toBe(2)
    const unopenable = await both([
      "port",
      "reserve",
      "--tag",
      "web",
      "--db",
      `sqlite:${join(dir, "missing", "x", "keel.db")}`
    ])
    expect(unopenable?.code).toBe(1)
  })

  it("an unknown option is the full command line's usage error (plain, --json, --verbose), and writes nothing", {
    timeout: slow
  }, async () => {
    for (const args of [
      ["port", "reserve", "--no-such-option"],
      ["port", "reserve", "--json", "--bogus"],
      ["port", "reserve", "--tag", "x", "--bogus=1", "--other"],
      ["port", "reserve", "--tag", "x", "--bogus", "--verbose"]
    ]) {
      const result = await both(args)
      expect(result?.code, args.join(" ")).toBe(2)
      expect(result?.stdout).toBe("")
      const reserved = await both(["port", "list", "--json"], [args])
      expect(reserved?.stdout, args.join(" ")).not.toContain("28871")
    }
  })

  it("an unknown option is answered by the entry point itself: the fast path's bundle is never loaded for it", {
    timeout: slow
  }, () => {
    // A copy of the build whose fast bundle throws when it is loaded.
    const copy = mkdtempSync(join(tmpdir(), "keel-entry-"))
    try {
      cpSync(dist, copy, { recursive: true })
      for (const name of readdirSync(copy)) if (name.startsWith("fast.cjs.")) rmSync(join(copy, name))
      writeFileSync(join(copy, "fast.cjs"), 'throw new Error("the fast bundle was loaded")\n')
      const run = (...args: ReadonlyArray<string>) =>
        spawnSync(process.execPath, [join(copy, "keel.cjs"), ...args], {
          cwd: dir,
          encoding: "utf8",
          env: { PATH: process.env.PATH ?? "", KEEL_DB: `sqlite:${join(dir, "entry.db")}` }
        })
      const unknown = run("port", "reserve", "--tag", "web", "--no-such-option")
      expect(unknown.status).toBe(2)
      expect(unknown.stderr).toBe("keel: Received unknown argument: '--no-such-option'\n")
      expect(run("port", "reserve", "--json", "--bogus").stderr).toBe(
        `${JSON.stringify({
          error: {
            kind: "InvalidValue",
            _tag: "ValidationError",
            message: "Received unknown argument: '--bogus'"
          },
          exitCode: 2
        })}\n`
      )
      // The probe works: a reserve does load the fast bundle.
      expect(run("port", "reserve", "--tag", "web").stderr).toContain("the fast bundle was loaded")
    } finally {
      rmSync(copy, { recursive: true, force: true })
    }
  })

  it("help pages are the full command line's, wherever --help or -h is", { timeout: slow }, async () => {
    for (const args of [
      ["--help"],
      ["port", "reserve", "--help"],
      ["--json", "port", "reserve", "--tag", "port", "-h"],
      ["queue", "dead", "list", "--help"],
      ["cursor", "--help"]
    ]) {
      const result = await both(args)
      expect(result?.code).toBe(0)
      expect(result?.stdout).toContain("USAGE")
    }
  })

  /**
   * `keel port reserve --tag web` (fast path on or off) on the database `db` under a preload whose
   * exit handler is `onExit` (JavaScript with `writeFileSync` in scope, writing to `OUT_FILE`):
   * what it wrote.
   */
  const atExit = async (name: string, onExit: ReadonlyArray<string>, fast: "1" | "0", db: string) => {
    const preload = join(dir, `${name}.cjs`)
    writeFileSync(
      preload,
      ['const { writeFileSync } = require("node:fs")', 'process.on("exit", () => {', ...onExit, "})"].join(
        "\n"
      )
    )
    const file = join(dir, `${name}-${fast}.out`)
    const result = await Keel.keel(["port", "reserve", "--tag", "web"], {
      env: {
        KEEL_DB: `sqlite:${join(dir, db)}`,
        KEEL_RESERVATION_CONFIG: join(dir, "reservations.json"),
        KEEL_CLI_FAST_PATH: fast,
        NODE_OPTIONS: `--require ${preload}`,
        OUT_FILE: file
      },
      cwd: dir
    })
    expect(result).toMatchObject({ code: 0, stdout: "28871\n", stderr: "" })
    return readFileSync(file, "utf8")
  }

  it("the fast path runs under OneShot's V8 settings: its young generation stays at its first size", {
    timeout: slow
  }, async () => {
    // The young generation's size when the process exits.
    const newSpace = async (fast: "1" | "0") =>
      Number(
        await atExit(
          "new-space",
          [
            '  const space = require("node:v8").getHeapSpaceStatistics().find((s) => s.space_name === "new_space")',
            "  writeFileSync(process.env.OUT_FILE, String(space.space_size))"
          ],
          fast,
          `one-shot-${fast}.db`
        )
      )
    const MiB = 1024 * 1024
    // Two semi-spaces of 1 MiB; without the settings they double while the modules load (8 MiB
    // and more for the full command line, 7.5 for the fast path).
    expect(await newSpace("1")).toBeLessThanOrEqual(2 * MiB)
    expect(await newSpace("0")).toBeGreaterThan(2 * MiB)
  })

  it("the fast path loads neither node:crypto nor perf_hooks, and runs the command with Node's own stack trace limit and performance", {
    timeout: slow
  }, async () => {
    // Which of Node's modules were loaded by exit, then what `OneShot.loading` changed for the
    // modules' evaluation (restored by `OneShot.loaded`).
    const loaded = async (fast: "1" | "0", db: string): Promise<unknown> =>
      JSON.parse(
        await atExit(
          "loaded-modules",
          [
            "  const loaded = process.moduleLoadList.filter((m) => /^NativeModule (crypto|perf_hooks)$/.test(m)).sort()",
            "  const state = { loaded, stackTraceLimit: Error.stackTraceLimit, mark: typeof performance.mark }",
            "  writeFileSync(process.env.OUT_FILE, JSON.stringify(state))"
          ],
          fast,
          db
        )
      )
    // A new database (migrations applied and recorded) and then an existing one (verified).
    for (const db of ["checksums.db", "checksums.db"]) {
      expect(await loaded("1", db)).toEqual({ loaded: [], stackTraceLimit: 10, mark: "function" })
    }
    // The full command line hashes the migrations and reads Effect's clock through Node's.
    expect(await loaded("0", "checksums-full.db")).toEqual({
      loaded: ["NativeModule crypto", "NativeModule perf_hooks"],
      stackTraceLimit: 10,
      mark: "function"
    })
  })

  it("the fast path leaves V8's code cache beside its bundle and survives a damaged one", {
    timeout: slow
  }, async () => {
    const env = {
      KEEL_DB: `sqlite:${join(dir, "cache.db")}`,
      KEEL_RESERVATION_CONFIG: join(dir, "reservations.json")
    }
    const caches = () =>
      readdirSync(dist).filter((name) => name.startsWith("fast.cjs.") && name.endsWith(".cache"))
    expect((await Keel.keel(["port", "reserve", "--tag", "web"], { env, cwd: dir })).stdout).toBe("28871\n")
    expect(caches()).toHaveLength(1)
    const cache = join(dist, caches()[0] ?? "")
    writeFileSync(cache, "not a code cache")
    const again = await Keel.keel(["port", "reserve", "--tag", "web"], { env, cwd: dir })
    expect(again).toMatchObject({ code: 0, stdout: "28871\n", stderr: "" })
    expect(existsSync(cache)).toBe(true)
    expect((await Keel.keel(["port", "reserve", "--tag", "web"], { env, cwd: dir })).stdout).toBe("28871\n")
  })
})
