/**
 * `--help` on every command, run in-process through `Cli.run`: it succeeds with the command's
 * usage and never opens the database (the DSN given points at a server that is not there).
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { afterEach, describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect } from "effect"
import * as Cli from "../src/Cli.js"

/** Every command of the tree, groups included. */
const commands: ReadonlyArray<string> = [
  "",
  "db",
  "db migrate",
  "db status",
  "queue",
  "queue create",
  "queue configure",
  "queue list",
  "queue info",
  "queue send",
  "queue send-batch",
  "queue read",
  "queue delete",
  "queue archive",
  "queue release",
  "queue extend",
  "queue dead",
  "queue dead list",
  "queue dead requeue",
  "queue purge",
  "queue drop",
  "queue metrics",
  "queue workers",
  "queue events",
  "queue consume",
  "port",
  "port reserve",
  "port reserve-group",
  "port release",
  "port list",
  "port show",
  "port cleanup",
  "cursor",
  "cursor get",
  "cursor set",
  "cursor list",
  "cursor delete",
  "cursor flush",
  "serve"
]

/** A database nobody listens on: opening it would fail the command. */
const unreachable = "postgres://keel:never-printed@127.0.0.1:1/keel"

/** Runs `keel …args` in-process, capturing what it logs. */
const run = (args: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const lines: Array<string> = []
    const console = yield* Effect.console
    const capture = (...parts: ReadonlyArray<unknown>) =>
      Effect.sync(() => {
        lines.push(parts.map(String).join(" "))
      })
    const code = yield* Cli.run(["node", "keel", ...args]).pipe(
      Effect.withConsole({ ...console, log: capture, info: capture, error: capture }),
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["KEEL_DB", unreachable]]))),
      Effect.provide(NodeContext.layer)
    )
    return { code, output: lines.join("\n") }
  })

describe("--help", () => {
  afterEach(() => {
    process.exitCode = undefined
  })

  it.effect("every command prints its usage and description and exits 0 without opening the database", () =>
    Effect.gen(function* () {
      for (const command of commands) {
        const path = command === "" ? [] : command.split(" ")
        const { code, output } = yield* run([...path, "--db", unreachable, "--help"])
        expect(code, command).toBe(0)
        expect(output, command).toContain("USAGE")
        expect(output, command).toContain(`$ ${path.at(-1) ?? "keel"}`)
        expect(output, command).toContain("DESCRIPTION")
        expect(output, command).not.toContain("never-printed")
      }
    })
  )

  it.effect("leaf commands list the global options; --help wins wherever it is", () =>
    Effect.gen(function* () {
      const { code, output } = yield* run([
        "--json",
        "port",
        "reserve",
        "--tag",
        "port",
        "--db",
        unreachable,
        "-h"
      ])
      expect(code).toBe(0)
      expect(output).toContain("$ reserve")
      for (const flag of ["--db", "--json", "--quiet", "--verbose", "--tag", "--path"]) {
        expect(output).toContain(flag)
      }
    })
  )
})
