/**
 * Hostile input for `keel`, generated with fast-check: argument vectors drawn from the real
 * command tree (every leaf's subcommand path, option names and positional arguments, read from
 * `@effect/cli`'s usage of the commands), with hostile, missing, repeated and unknown values; and
 * `queue send-batch` inputs (valid, invalid and binary lines) whose expected outcome is known.
 */
import * as Command from "@effect/cli/Command"
import * as Descriptor from "@effect/cli/CommandDescriptor"
import type * as Usage from "@effect/cli/Usage"
import { FastCheck as fc, HashMap, Option } from "effect"
import * as Cli from "../../src/Cli.js"
import { cursor } from "../../src/commands/Cursor.js"
import { db } from "../../src/commands/Db.js"
import { port } from "../../src/commands/Port.js"
import { dead, queueCommand } from "../../src/commands/Queue.js"
import { schedule } from "../../src/commands/Schedule.js"

/** An option of a leaf command: its names and what value it takes. */
export interface Flag {
  readonly names: ReadonlyArray<string>
  readonly kind: "boolean" | "integer" | "text" | "dsn" | "choice"
  readonly choices: ReadonlyArray<string>
}

/** A positional argument of a leaf command. */
export interface Positional {
  readonly name: string
  readonly optional: boolean
  readonly repeated: boolean
}

/** A command that runs something: its path from the root, its options and its arguments. */
export interface Leaf {
  readonly path: ReadonlyArray<string>
  readonly flags: ReadonlyArray<Flag>
  readonly positionals: ReadonlyArray<Positional>
}

const kindOf = (accepted: Option.Option<string>): Flag["kind"] =>
  Option.match(accepted, {
    onNone: () => "boolean",
    onSome: (value) =>
      value === "integer" ? "integer" : value === "DSN" ? "dsn" : value.includes(" | ") ? "choice" : "text"
  })

/** The options and arguments found in a command's usage, collected as it is walked. */
interface Found {
  readonly flags: Array<Flag>
  readonly positionals: Array<Positional>
}

const collect = (usage: Usage.Usage, optional: boolean, repeated: boolean, found: Found): void => {
  switch (usage._tag) {
    case "Named": {
      const [first = ""] = usage.names
      if (first.startsWith("-")) {
        const kind = kindOf(usage.acceptedValues)
        const choices = kind === "choice" ? Option.getOrElse(usage.acceptedValues, () => "").split(" | ") : []
        found.flags.push({ names: usage.names, kind, choices })
      } else if (first.startsWith("<")) {
        found.positionals.push({ name: first.slice(1, -1), optional, repeated })
      }
      return
    }
    case "Optional":
      collect(usage.usage, true, repeated, found)
      return
    case "Repeated":
      collect(usage.usage, optional, true, found)
      return
    case "Concat":
    case "Alternation":
      collect(usage.left, optional, repeated, found)
      collect(usage.right, optional, repeated, found)
      return
    default:
      return
  }
}

const leavesOf = <Name extends string, R, E, A>(
  path: ReadonlyArray<string>,
  group: Command.Command<Name, R, E, A>,
  groups: ReadonlyArray<string>
): ReadonlyArray<Leaf> =>
  Array.from(HashMap.toEntries(Command.getSubcommands(group)))
    .filter(([name]) => !groups.includes([...path, name].join(" ")))
    .map(([name, descriptor]) => {
      const found: Found = { flags: [], positionals: [] }
      collect(Descriptor.getUsage(descriptor), false, false, found)
      return { path: [...path, name], ...found }
    })

const groupPaths = ["db", "queue", "queue dead", "port", "cursor", "schedule"]

/**
 * Every leaf of `keel`, read from the command tree. `serve` and `schedule run` are left out: a
 * valid invocation runs until stopped (`serve` is `Globals.e2e.test.ts`'s business).
 */
export const leaves: ReadonlyArray<Leaf> = [
  ...leavesOf([], Cli.keel, groupPaths),
  ...leavesOf(["db"], db, groupPaths),
  ...leavesOf(["queue"], queueCommand, groupPaths),
  ...leavesOf(["queue", "dead"], dead, groupPaths),
  ...leavesOf(["port"], port, groupPaths),
  ...leavesOf(["cursor"], cursor, groupPaths),
  ...leavesOf(["schedule"], schedule, groupPaths)
].filter((leaf) => leaf.path.join(" ") !== "serve" && leaf.path.join(" ") !== "schedule run")

/** A password that must never be printed (it is in some `--db` values). */
export const secret = "Sup3r-S3cret-pw"

/** The queue the test creates; most generated names point at it, so commands get past validation. */
export const queueName = "fuzz"

const controlCharacters = fc
  .array(fc.integer({ min: 0, max: 31 }), { minLength: 1, maxLength: 6 })
  .map((codes) => String.fromCharCode(...codes))

/** Text meant to break things: empty, blank, dash-led, unicode, control characters, very long. */
export const hostileText: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    "",
    " ",
    "-",
    "--",
    "---",
    "-1",
    "=",
    "\t",
    "\n",
    "\r\n",
    "null",
    "NaN",
    "Infinity",
    "-0",
    "1e309",
    "0x1F",
    "９",
    "١٢٣",
    "$(echo pwned)",
    "`id`",
    "%s%n",
    "../../../../etc/passwd",
    "\u202eevil",
    "\ufeff",
    "\u2028",
    "😀",
    "a\u0000b",
    "\u001b[31mred\u001b[0m",
    "{}",
    "[]",
    '{"a":1}',
    "'",
    '"',
    "\\"
  ),
  fc.string({ maxLength: 30 }),
  fc.fullUnicodeString({ maxLength: 30 }),
  controlCharacters,
  fc.integer({ min: 1_000, max: 60_000 }).map((length) => "é".repeat(length))
)

const integerText: fc.Arbitrary<string> = fc.oneof(
  fc.integer().map(String),
  fc.integer({ min: -5, max: 20 }).map(String),
  fc.bigInt().map(String),
  fc.constantFrom("99999999999999999999", "-99999999999999999999", "1e3", "1.5", "0x10", " 7", "+7", "--1"),
  hostileText
)

const durationText: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom("30s", "0", "1", "-5s", "1e309s", "99999999999999999999", "400d", "5 lightyears", "1.5h"),
  fc.constantFrom("0.0001ms", "NaN ms", "9007199254740993", "2s", "100 millis", "7 days", "  3m  "),
  fc.nat().map(String),
  hostileText
)

const dsnText = (valid: string): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.constant(valid) },
    {
      weight: 3,
      arbitrary: fc.constantFrom(
        "nope:x",
        "",
        "sqlite:",
        "sqlite:/nonexistent-keel-dir/x/y.db",
        "sqlite:relative.db",
        "sqlite:.",
        "file:",
        `postgres://keel:${secret}@127.0.0.1:1/keel`,
        `postgres://keel:${secret}@127.0.0.1:notaport/keel`,
        `postgres://keel@127.0.0.1:1/keel?password=${secret}`,
        `nope://keel:${secret}@host/db`
      )
    },
    { weight: 1, arbitrary: hostileText }
  )

const textFor = (name: string): fc.Arbitrary<string> => {
  if (/timeout|interval|delay|retention|ttl|backoff|unused-for/.test(name)) return durationText
  if (name === "--range")
    return fc.oneof(fc.constantFrom("40000-40010", "5-1", "0-70000", "x-y"), hostileText)
  if (name === "--exclude") return fc.oneof(fc.constantFrom("40001", "40002-40003", "99999"), hostileText)
  // An existing directory outside the sandbox that nothing may write to: "/" was one, until a run
  // drew `port init --path / --project ns` and left /trop.yaml on the machine (every later
  // reservation under / then took its project from it).
  if (name === "--path" || name === "-p" || name === "--file" || name === "-f")
    return fc.oneof(fc.constantFrom(".", "/proc", "/nonexistent", "-", "sub/dir", "/dev/null"), hostileText)
  if (name === "--tag" || name === "-t")
    return fc.oneof(fc.constantFrom("web", "api", "a".repeat(300)), hostileText)
  return fc.oneof(fc.constantFrom("web", "worker-1", "ns"), hostileText)
}

const queueText: fc.Arbitrary<string> = fc.oneof(
  { weight: 5, arbitrary: fc.constant(queueName) },
  { weight: 2, arbitrary: fc.stringMatching(/^[a-z0-9_-]{1,64}$/) },
  { weight: 1, arbitrary: fc.constantFrom("A", "x".repeat(65), "bad name", "élan") },
  { weight: 1, arbitrary: hostileText }
)

/** A value for the positional argument `name`. */
const positionalFor = (name: string): fc.Arbitrary<string> => {
  switch (name) {
    case "queue":
      return queueText
    case "id":
    case "position":
      return integerText
    case "payload":
      return fc.oneof(
        fc.jsonValue({ maxDepth: 3 }).map((value) => JSON.stringify(value)),
        hostileText
      )
    case "command":
      // Never random text: `consume` runs it with `sh -c`.
      return fc.constantFrom("true", "exit 3", "cat > /dev/null")
    case "service":
      return fc.oneof(
        fc.constantFrom("web", "web=40005", "web+1", "=3000", "web=99999999", "a=1+2"),
        hostileText
      )
    default:
      return fc.oneof(fc.constantFrom("web", "replica-1", "lease"), hostileText)
  }
}

const valueFor = (flag: Flag, name: string, dsn: string): fc.Arbitrary<string> => {
  switch (flag.kind) {
    case "boolean":
      return fc.constantFrom("true", "false", "yes", "maybe")
    case "integer":
      return integerText
    case "dsn":
      return dsnText(dsn)
    case "choice":
      return fc.oneof(fc.constantFrom(...flag.choices), hostileText)
    case "text":
      return textFor(name)
  }
}

/** Tokens that are not the command's own: unknown flags, built-ins, stray separators. */
const strayToken: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    "--no-such-flag",
    "-x",
    "-qq",
    "--",
    "---",
    "--json=maybe",
    "--db",
    "-",
    "--qty=1=2",
    "--help",
    "-h",
    "--version",
    "--wizard",
    "--completions",
    "--completions=fish",
    "--log-level",
    "--log-level=all"
  ),
  hostileText.map((text) => `--${text}`),
  hostileText
)

const flagTokens = (flag: Flag, dsn: string): fc.Arbitrary<ReadonlyArray<string>> =>
  fc
    .constantFrom(...flag.names)
    .chain((name) =>
      flag.kind === "boolean"
        ? fc.oneof(
            { weight: 5, arbitrary: fc.constant([name]) },
            { weight: 1, arbitrary: valueFor(flag, name, dsn).map((value) => [`${name}=${value}`]) }
          )
        : fc.oneof(
            { weight: 6, arbitrary: valueFor(flag, name, dsn).map((value) => [name, value]) },
            { weight: 2, arbitrary: valueFor(flag, name, dsn).map((value) => [`${name}=${value}`]) },
            { weight: 1, arbitrary: fc.constant([name]) }
          )
    )

/** Whether a leaf needs standard input when `args` do not give its payload (send, send-batch). */
export const readsStdin = (leaf: Leaf): boolean =>
  leaf.path.join(" ") === "queue send" || leaf.path.join(" ") === "queue send-batch"

/** One generated command line and, for commands that read it, standard input. */
export interface ArgvCase {
  readonly leaf: Leaf
  readonly args: ReadonlyArray<string>
  readonly stdin: Uint8Array | undefined
}

/** Command lines for any leaf of the tree, against the database `dsn`. */
export const argvCase = (dsn: string, stdin: fc.Arbitrary<Uint8Array>): fc.Arbitrary<ArgvCase> =>
  fc.constantFrom(...leaves).chain((leaf) =>
    fc
      .record({
        before: fc.subarray(["--json", "--quiet"]),
        path: fc.oneof(
          { weight: 12, arbitrary: fc.constant(leaf.path) },
          { weight: 1, arbitrary: fc.constant(leaf.path.slice(0, -1)) },
          { weight: 1, arbitrary: fc.constant([...leaf.path.slice(0, -1), `${leaf.path.at(-1) ?? ""}x`]) }
        ),
        flags: fc
          .shuffledSubarray([...leaf.flags], { maxLength: Math.min(5, leaf.flags.length) })
          .chain((flags) => fc.tuple(...flags.map((flag) => flagTokens(flag, dsn)))),
        positionals: fc.tuple(
          ...leaf.positionals.map((positional) =>
            fc.oneof(
              { weight: 8, arbitrary: positionalFor(positional.name).map((value) => [value]) },
              { weight: 1, arbitrary: fc.constant([]) },
              {
                weight: positional.repeated ? 2 : 1,
                arbitrary: fc.array(positionalFor(positional.name), { minLength: 2, maxLength: 3 })
              }
            )
          )
        ),
        stray: fc.array(strayToken, { maxLength: 2 }),
        flagsFirst: fc.boolean(),
        stdin: fc.option(stdin, { freq: 3 })
      })
      .map((drawn) => {
        const flags = drawn.flags.flat()
        const positionals = drawn.positionals.flat()
        const body = drawn.flagsFirst ? [...flags, ...positionals] : [...positionals, ...flags]
        return {
          leaf,
          args: [...drawn.before, ...drawn.path, ...body, ...drawn.stray],
          stdin: readsStdin(leaf) ? (drawn.stdin ?? new Uint8Array()) : undefined
        }
      })
  )

// ---- send-batch input with a known outcome ------------------------------------------------------

/**
 * One line of a send-batch input and whether the queue accepts it; an envelope that gives its own
 * priority or delay does not take the command line's.
 */
interface Line {
  readonly bytes: Uint8Array
  readonly valid: boolean
  readonly blank?: boolean
  readonly ownPriority?: boolean
  readonly ownDelay?: boolean
}

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)

const line = (text: string, valid: boolean): Line => ({ bytes: utf8(text), valid })

/** Bytes that are not UTF-8 (a line that is never JSON), without line breaks. */
const binaryLine: fc.Arbitrary<Line> = fc.uint8Array({ maxLength: 200 }).map((bytes) => ({
  bytes: Uint8Array.from([0xff, 0xfe, 0x00, ...bytes.filter((byte) => byte !== 0x0a && byte !== 0x0d)]),
  valid: false
}))

const payloadLine = (envelopes: boolean, unique: () => string): fc.Arbitrary<Line> => {
  const payload = fc.jsonValue({ maxDepth: 3 })
  const plain = fc.oneof(
    { weight: 8, arbitrary: payload.map((value) => line(JSON.stringify(value), true)) },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        line('"\\ud800"', true),
        line('"a\\u0000b"', true),
        line("-0", true),
        line(`${"[".repeat(100)}${"]".repeat(100)}`, true),
        line(`${"[".repeat(200)}${"]".repeat(200)}`, false),
        line("1e999", false),
        line(JSON.stringify({ big: "x".repeat(200_000) }), true),
        line(JSON.stringify({ big: "x".repeat(300_000) }), false),
        line(JSON.stringify({ big: "😀".repeat(70_000) }), false)
      )
    }
  )
  if (!envelopes) return plain
  return fc.oneof(
    {
      weight: 8,
      arbitrary: fc
        .record({
          payload,
          priority: fc.option(fc.integer({ min: -32768, max: 32767 })),
          delay: fc.option(fc.integer({ min: 0, max: 5_000 })),
          keyed: fc.boolean()
        })
        .map(({ payload, priority, delay, keyed }) => ({
          ...line(
            JSON.stringify({
              payload,
              ...(priority === null ? {} : { priority }),
              ...(delay === null ? {} : { delay }),
              ...(keyed ? { dedupKey: unique() } : {})
            }),
            true
          ),
          ownPriority: priority !== null,
          ownDelay: delay !== null
        }))
    },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        line('{"priority":1}', false),
        line('{"payload":1,"priority":40000}', false),
        line('{"payload":1,"priority":1.5}', false),
        line('{"payload":1,"priority":"high"}', false),
        line('{"payload":1,"delay":-1}', false),
        line('{"payload":1,"delay":1e20}', false),
        line('{"payload":1,"dedupKey":""}', false),
        line('{"payload":1,"dedupKey":"a\\u0001b"}', false),
        line("[1,2]", false),
        line("7", false)
      )
    }
  )
}

const invalidJson: fc.Arbitrary<Line> = fc.oneof(
  fc
    .constantFrom("{", "nope", "{'a':1}", "[1,2", '{"a":"\u0000"}', "NaN", "undefined", '{"a":1}}', "\u0000")
    .map((text) => line(text, false)),
  fc
    .string({ minLength: 1, maxLength: 20 })
    .filter((text) => {
      if (text.trim() === "" || /[\r\n]/.test(text)) return false
      try {
        JSON.parse(text)
        return false
      } catch {
        return true
      }
    })
    .map((text) => line(text, false)),
  binaryLine
)

const blankLine: fc.Arbitrary<Line> = fc
  .constantFrom("", "   ", "\t", "\ufeff")
  .map((text) => ({ bytes: utf8(text), valid: true, blank: true }))

/** A send-batch input, what it holds, and whether every line of it is acceptable. */
export interface Batch {
  readonly bytes: Uint8Array
  readonly envelopes: boolean
  /** Lines that are not blank: the messages a successful run stores. */
  readonly messages: number
  readonly valid: boolean
  /** Whether some message takes `--priority` / `--delay` (does not give its own). */
  readonly takes: { readonly priority: boolean; readonly delay: boolean }
}

const takes = (lines: ReadonlyArray<Line>): Batch["takes"] => {
  const messages = lines.filter((each) => each.blank !== true)
  return {
    priority: messages.some((each) => each.ownPriority !== true),
    delay: messages.some((each) => each.ownDelay !== true)
  }
}

const join = (lines: ReadonlyArray<Line>, eol: string, trailing: boolean): Uint8Array => {
  const separator = utf8(eol)
  const parts: Array<Uint8Array> = []
  lines.forEach((each, index) => {
    parts.push(each.bytes)
    if (index < lines.length - 1 || trailing) parts.push(separator)
  })
  return Buffer.concat(parts)
}

/**
 * A send-batch input: up to 25 generated lines, or (rarely) a batch just over the 10,000 messages
 * one statement takes, whose last line may be unacceptable.
 */
export const batch = (unique: () => string): fc.Arbitrary<Batch> =>
  fc.boolean().chain((envelopes) =>
    fc.oneof(
      {
        weight: 12,
        arbitrary: fc
          .record({
            lines: fc.array(
              fc.oneof(
                { weight: 10, arbitrary: payloadLine(envelopes, unique) },
                { weight: 1, arbitrary: invalidJson },
                { weight: 1, arbitrary: blankLine }
              ),
              { maxLength: 25 }
            ),
            eol: fc.constantFrom("\n", "\r\n"),
            trailing: fc.boolean()
          })
          .map(({ lines, eol, trailing }) => ({
            bytes: join(lines, eol, trailing),
            envelopes,
            messages: lines.filter((each) => each.blank !== true).length,
            valid: lines.every((each) => each.valid),
            takes: takes(lines)
          }))
      },
      {
        weight: 1,
        arbitrary: fc
          .record({
            count: fc.integer({ min: 9_999, max: 10_003 }),
            last: fc.oneof(payloadLine(envelopes, unique), invalidJson)
          })
          .map(({ count, last }) => {
            const each = (index: number) =>
              envelopes ? JSON.stringify({ payload: { n: index } }) : JSON.stringify({ n: index })
            const head = Array.from({ length: count - 1 }, (_, index) => line(each(index), true))
            return {
              bytes: join([...head, last], "\n", true),
              envelopes,
              messages: count,
              valid: last.valid,
              takes: takes([...head, last])
            }
          })
      }
    )
  )

/** Any bytes on stdin, for commands that read it: a batch's bytes, or raw binary. */
export const stdinBytes = (unique: () => string): fc.Arbitrary<Uint8Array> =>
  fc.oneof(
    { weight: 4, arbitrary: batch(unique).map((drawn) => drawn.bytes) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 4_096 }) }
  )
