/**
 * The queue event log on the command line, on each backend: `--events` / `--no-events` on
 * `keel queue create` and `configure` (shown by `info` and `list`) switch recording on and off;
 * `keel queue events` prints what is recorded, oldest first (human lines or one JSON object per
 * line), resumes after `--since`, and with `--follow` prints new events until SIGTERM (exit 0); a
 * missing queue is exit 1 and a bad `--since` exit 2.
 */
import { afterAll, beforeAll, expect, it } from "vitest"
import * as Keel from "./support/Keel.js"

/** `value` as a JSON object (failing the test when it is not one). */
const record = (value: unknown): Record<string, unknown> => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`expected an object: ${JSON.stringify(value)}`)
  }
  return { ...value }
}

/** The JSON objects of `--json` output, one per line. */
const jsonLines = (result: Keel.Result): ReadonlyArray<Record<string, unknown>> =>
  Keel.ok(result)
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => record(JSON.parse(line)))

/** The first leased message of a `queue read --json`. */
const leased = (result: Keel.Result): { readonly id: string; readonly lease: string } => {
  const messages = Keel.json(result).messages
  if (!Array.isArray(messages)) throw new Error(`expected messages: ${result.stdout}`)
  const message = record(messages[0])
  return { id: String(message.id), lease: String(message.lease) }
}

Keel.describeBackends("keel queue events", (kind) => {
  let database: Awaited<ReturnType<typeof Keel.freshDatabase>>
  let env: Record<string, string>
  const keel = (args: ReadonlyArray<string>) => Keel.keel(args, { env })
  const events = async (...args: ReadonlyArray<string>) =>
    jsonLines(await keel(["queue", "events", ...args, "--json"]))

  beforeAll(async () => {
    await Keel.ensureBuilt()
    database = await Keel.freshDatabase(kind)
    env = { KEEL_DB: database.dsn, XDG_DATA_HOME: database.dir }
  })
  afterAll(() => database.close())

  it("a queue created with --events records each message's lifecycle, printed in order; --since resumes; a queue without it records none", async () => {
    const created = Keel.json(await keel(["queue", "create", "orders", "--events", "--json"]))
    expect(created.queue).toMatchObject({ name: "orders", events: true })
    expect(Keel.json(await keel(["queue", "create", "plain", "--json"])).queue).toMatchObject({
      events: false
    })
    expect(Keel.ok(await keel(["queue", "info", "orders"]))).toMatch(
      /\sEVENTS\s+CREATED\n[^\n]*\syes\s+\d{4}-/
    )
    expect(Keel.ok(await keel(["queue", "list"]))).toMatch(/\nplain\s[^\n]*\sno\s+\d{4}-/)

    const first = Keel.ok(await keel(["queue", "send", "orders", '{"n":1}'])).trim()
    Keel.ok(await keel(["queue", "send", "plain", '{"n":1}']))
    const once = leased(await keel(["queue", "read", "orders", "--json"]))
    Keel.ok(await keel(["queue", "release", "orders", once.id, once.lease, "--error", "boom"]))
    const twice = leased(await keel(["queue", "read", "orders", "--json"]))
    Keel.ok(await keel(["queue", "archive", "orders", twice.id, twice.lease]))
    const second = Keel.ok(await keel(["queue", "send", "orders", '{"n":2}'])).trim()
    const taken = leased(await keel(["queue", "read", "orders", "--json"]))
    Keel.ok(await keel(["queue", "delete", "orders", taken.id, taken.lease]))

    const recorded = await events("orders")
    expect(recorded.map((event) => [String(event.messageId), event.type, event.error])).toEqual([
      [first, "sent", null],
      [first, "leased", null],
      [first, "released", "boom"],
      [first, "leased", null],
      [first, "acknowledged", null],
      [second, "sent", null],
      [second, "leased", null],
      [second, "deleted", null]
    ])
    const ids = recorded.map((event) => Number(event.id))
    expect(ids).toEqual([...ids].sort((a, b) => a - b))
    for (const event of recorded) {
      expect(event).toMatchObject({ queue: "orders" })
      expect(typeof event.at).toBe("number")
    }
    // Every queue's log holds the same events: the queue without events recorded none.
    expect(await events()).toEqual(recorded)
    expect(await events("plain")).toEqual([])

    const lines = Keel.ok(await keel(["queue", "events", "orders"])).split("\n")
    expect(lines[0]).toBe(
      `${ids[0]}  ${new Date(Number(recorded[0]?.at)).toISOString()}  orders  #${first}  sent`
    )
    expect(lines[2]).toMatch(new RegExp(`^${ids[2]}  \\d{4}-\\S+Z  orders  #${first}  released  boom$`))
    expect(lines).toHaveLength(recorded.length + 1)

    expect(await events("orders", "--since", String(ids[4]))).toEqual(recorded.slice(5))
    expect(await events("orders", "--since", String(ids[7]))).toEqual([])
  })

  it("configure --no-events stops recording and --events starts it again; info shows each", async () => {
    const before = await events("orders")
    const last = String(before[before.length - 1]?.id)
    const off = Keel.json(await keel(["queue", "configure", "orders", "--no-events", "--json"]))
    expect(off.queue).toMatchObject({ events: false })
    expect(Keel.ok(await keel(["queue", "info", "orders"]))).toMatch(/\sno\s+\d{4}-/)
    Keel.ok(await keel(["queue", "send", "orders", '{"n":3}']))
    expect(await events("orders", "--since", last)).toEqual([])
    // Other settings leave it as it is.
    Keel.ok(await keel(["queue", "configure", "orders", "--events"]))
    Keel.ok(await keel(["queue", "configure", "orders", "--max-deliveries", "7"]))
    expect(Keel.json(await keel(["queue", "info", "orders", "--json"])).queue).toMatchObject({
      events: true,
      maxDeliveries: 7
    })
    const sent = Keel.ok(await keel(["queue", "send", "orders", '{"n":4}'])).trim()
    expect(await events("orders", "--since", last)).toEqual([
      expect.objectContaining({ messageId: Number(sent), type: "sent" })
    ])
  })

  it("--follow prints an event recorded after it started and exits 0 on SIGTERM", async () => {
    const before = await events("orders")
    const last = String(before[before.length - 1]?.id)
    const follower = Keel.start(["queue", "events", "orders", "--follow", "--since", last, "--json"], { env })
    const sent = Keel.ok(await keel(["queue", "send", "orders", '{"n":5}'])).trim()
    await Keel.eventually(() => follower.stdout().includes('"type":"sent"'), 30_000, "the followed event")
    follower.child.kill("SIGTERM")
    const ended = await follower.exited
    expect({ code: ended.code, stderr: ended.stderr }).toEqual({ code: 0, stderr: "" })
    expect(jsonLines(ended)).toEqual([
      expect.objectContaining({ queue: "orders", messageId: Number(sent), type: "sent" })
    ])
  })

  it("a missing queue is exit 1; a bad --since, or --events with --no-events, is exit 2", async () => {
    expect(Keel.failure(await keel(["queue", "events", "missing"]), 1)).toMatch(/missing/)
    expect(Keel.failure(await keel(["queue", "events", "orders", "--follow", "--since", "x"]), 2)).toMatch(
      /integer/
    )
    expect(Keel.failure(await keel(["queue", "events", "orders", "--since", "-1"]), 2)).toMatch(/since/)
    expect(Keel.failure(await keel(["queue", "configure", "orders", "--events", "--no-events"]), 2)).toMatch(
      /--no-events/
    )
    expect(Keel.json(await keel(["queue", "info", "orders", "--json"])).queue).toMatchObject({ events: true })
  })
})
