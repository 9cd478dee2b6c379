/**
 * `keel queue send`'s job options on each backend: uniqueness (`--dedup-key`, `--dedup-window`,
 * `--dedup-mode`: a window after which the key sends a new message, `replace` and `debounce`) and a
 * retry policy per message (`--max-deliveries`, `--backoff`); the same fields in `send-batch
 * --envelopes`; `keel queue cancel` and `keel queue update` by id; bad options as one-line errors
 * that store nothing.
 *
 * What an option stores is the same whether `Program.run` runs in a child process or in this one,
 * so those tests run keel in-process (`InProcess.run`: milliseconds a run instead of a process
 * start); the usage errors, which are about the exit code and the one line on stderr, run the
 * built binary.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as InProcess from "./support/InProcess.js"
import * as Keel from "./support/Keel.js"

const idOf = (result: Keel.Result): number => Number(Keel.json(result).id)

for (const kind of Keel.kinds) {
  describe(`keel queue job options [${kind}]`, () => {
    let database: Awaited<ReturnType<typeof Keel.freshDatabase>>
    let env: Record<string, string>
    /** keel in this process (runs in order: each is awaited before the next starts). */
    const keel = (args: ReadonlyArray<string>, input?: string) => InProcess.run({ args, env, stdin: input })
    /** The built binary as a child process. */
    const binary = (args: ReadonlyArray<string>) => Keel.keel(args, { env })

    beforeAll(async () => {
      await Keel.ensureBuilt()
      database = await Keel.freshDatabase(kind)
      env = { KEEL_DB: database.dsn, XDG_DATA_HOME: database.dir }
      // The in-process runs read KEEL_DB at run time: they are on this backend, not on a default.
      expect(Keel.json(await keel(["db", "status", "--json"])).backend).toBe(kind)
    })
    afterAll(() => database.close())

    it("--dedup-window, --dedup-mode replace and debounce; envelopes carry the same fields", async () => {
      Keel.ok(await keel(["queue", "create", "jobs"]))
      const send = (payload: string, ...options: ReadonlyArray<string>) =>
        keel(["queue", "send", "jobs", payload, "--dedup-key", "k", "--json", ...options])
      const first = idOf(await send('"v1"'))
      expect(idOf(await send('"v2"', "--dedup-mode", "replace"))).toBe(first)
      expect(idOf(await send('"v3"'))).toBe(first)
      const windowed = idOf(
        await keel(["queue", "send", "jobs", '"w1"', "--dedup-key", "w", "--dedup-window", "1s", "--json"])
      )
      await new Promise((resolve) => setTimeout(resolve, 1_100))
      const renewed = idOf(
        await keel(["queue", "send", "jobs", '"w2"', "--dedup-key", "w", "--dedup-window", "1s", "--json"])
      )
      expect(renewed).not.toBe(windowed)
      // Debounce: replaced and pushed back by the delay.
      const debounced = idOf(
        await keel([
          "queue",
          "send",
          "jobs",
          '"d1"',
          "--dedup-key",
          "d",
          "--dedup-mode",
          "debounce",
          "--json"
        ])
      )
      expect(
        idOf(
          await keel([
            "queue",
            "send",
            "jobs",
            '"d2"',
            "--dedup-key",
            "d",
            "--dedup-mode",
            "debounce",
            "--delay",
            "1h",
            "--json"
          ])
        )
      ).toBe(debounced)
      const batch = Keel.json(
        await keel(
          ["queue", "send-batch", "jobs", "--envelopes", "--json"],
          '{"payload":"v4","dedupKey":"k","dedupMode":"replace","priority":-5}\n{"payload":"n","dedupKey":"n","dedupWindow":60000}\n'
        )
      )
      expect(Array.isArray(batch.ids) ? batch.ids[0] : undefined).toBe(first)
      const read = Keel.json(await keel(["queue", "read", "jobs", "-n", "10", "--json"]))
      const payloads = (Array.isArray(read.messages) ? read.messages : []).map((message: unknown) =>
        typeof message === "object" && message !== null && "payload" in message ? message.payload : undefined
      )
      // v4 first (priority -5); d2 is an hour away.
      expect(payloads).toEqual(["v4", "w1", "w2", "n"])
      expect(Keel.json(await keel(["queue", "metrics", "jobs", "--json"]))).toMatchObject({
        metrics: [{ queue: "jobs", delayed: 1, inFlight: 4 }]
      })
    })

    it("--max-deliveries and --backoff travel with the message; send-batch applies them as defaults", async () => {
      Keel.ok(await keel(["queue", "create", "policy", "--max-deliveries", "5"]))
      Keel.ok(
        await keel(["queue", "send", "policy", '"own"', "--max-deliveries", "1", "--backoff", "fixed:10s"])
      )
      Keel.ok(
        await keel(
          ["queue", "send-batch", "policy", "--envelopes", "--backoff", "linear:2s:1m"],
          '{"payload":"enveloped","maxDeliveries":3}\n{"payload":"plain","backoff":{"kind":"exponential","base":500}}\n'
        )
      )
      const read = Keel.json(await keel(["queue", "read", "policy", "-n", "10", "--json"]))
      const policies = (Array.isArray(read.messages) ? read.messages : []).map((message: unknown) =>
        typeof message === "object" &&
        message !== null &&
        "payload" in message &&
        "maxDeliveries" in message &&
        "backoff" in message
          ? [message.payload, message.maxDeliveries, message.backoff]
          : undefined
      )
      expect(policies).toEqual([
        ["own", 1, { kind: "fixed", base: 10_000, max: 300_000, jitter: 0.25 }],
        ["enveloped", 3, { kind: "linear", base: 2_000, max: 60_000, jitter: 0.25 }],
        ["plain", 5, { kind: "exponential", base: 500, max: 300_000, jitter: 0.25 }]
      ])
      expect(Keel.failure(await keel(["queue", "send", "policy", "1", "--backoff", "random:1s"]), 2)).toMatch(
        /--backoff/
      )
      expect(
        Keel.failure(await keel(["queue", "send", "policy", "1", "--backoff", "fixed:1m:1s"]), 2)
      ).toMatch(/backoff\.max/)
      expect(Keel.failure(await keel(["queue", "send", "policy", "1", "--max-deliveries", "0"]), 2)).toMatch(
        /maxDeliveries/
      )
    })

    it("queue cancel archives a message as cancelled; queue update changes a queued one; unknown ids exit 1", async () => {
      Keel.ok(await keel(["queue", "create", "byid"]))
      const first = idOf(await keel(["queue", "send", "byid", '"first"', "--json"]))
      const second = idOf(await keel(["queue", "send", "byid", '"second"', "--delay", "1h", "--json"]))
      expect(Keel.json(await keel(["queue", "cancel", "byid", String(first), "--json"]))).toMatchObject({
        outcome: "cancelled"
      })
      expect(Keel.failure(await keel(["queue", "cancel", "byid", String(first)]), 1)).toMatch(/not in queue/)
      Keel.ok(await keel(["queue", "update", "byid", String(second), "--delay", "0", "--priority", "-2"]))
      const read = Keel.json(await keel(["queue", "read", "byid", "--json"]))
      expect(read.messages).toMatchObject([{ id: second, payload: "second", priority: -2 }])
      expect(
        Keel.failure(await keel(["queue", "update", "byid", String(second), "--priority", "1"]), 1)
      ).toMatch(/leased/)
      expect(Keel.json(await keel(["queue", "cancel", "byid", String(second), "--json"]))).toMatchObject({
        outcome: "cancelledRunning"
      })
      expect(
        Keel.failure(await keel(["queue", "update", "byid", String(second), "--priority", "99999"]), 2)
      ).toMatch(/priority/)
      expect(Keel.json(await keel(["queue", "metrics", "byid", "--json"]))).toMatchObject({
        metrics: [{ depth: 0, inFlight: 0, delayed: 0, archived: 2 }]
      })
    })

    it("queue show reports where a message is; queue progress records a holder's progress", async () => {
      Keel.ok(await keel(["queue", "create", "shown"]))
      const id = idOf(await keel(["queue", "send", "shown", '{"job":1}', "--group", "user-7", "--json"]))
      const second = idOf(await keel(["queue", "send", "shown", '{"job":2}', "--group", "user-7", "--json"]))
      expect(Keel.json(await keel(["queue", "show", "shown", String(id), "--json"])).message).toMatchObject({
        id,
        state: "queued",
        deliveries: 0,
        progress: null,
        group: "user-7"
      })
      const read = Keel.json(await keel(["queue", "read", "shown", "--json"]))
      const [leased] = Array.isArray(read.messages) ? read.messages : []
      const lease =
        typeof leased === "object" && leased !== null && "lease" in leased ? String(leased.lease) : ""
      Keel.ok(await keel(["queue", "progress", "shown", String(id), lease, '{"pct":40}']))
      const shown = Keel.ok(await keel(["queue", "show", "shown", String(id)]))
      expect(shown).toMatch(/state\s+leased/)
      expect(shown).toMatch(/progress\s+\{"pct":40\}/)
      // Its group's next message waits for it.
      expect(Keel.json(await keel(["queue", "read", "shown", "--json"])).messages).toEqual([])
      expect(
        Keel.json(await keel(["queue", "show", "shown", String(second), "--json"])).message
      ).toMatchObject({
        state: "queued",
        group: "user-7"
      })
      expect(
        Keel.failure(await keel(["queue", "progress", "shown", String(id), "wrong-lease", "1"]), 1)
      ).toMatch(/no longer held/)
      expect(Keel.failure(await keel(["queue", "show", "shown", "999999"]), 1)).toMatch(/not in queue/)
    })

    it("a bad mode is a usage error (exit 2); a window or mode without a key is one line, exit 2, nothing stored", async () => {
      Keel.ok(await binary(["queue", "create", "strict"]))
      // Four refused sends, at the same time: each is refused on its own, and the metrics read
      // after all four have exited show that none of them stored anything.
      const [badMode, windowWithoutKey, modeWithoutKey, zeroWindow] = await Promise.all([
        binary(["queue", "send", "strict", "1", "--dedup-key", "k", "--dedup-mode", "upsert"]),
        binary(["queue", "send", "strict", "1", "--dedup-window", "1m"]),
        binary(["queue", "send", "strict", "1", "--dedup-mode", "replace"]),
        binary(["queue", "send", "strict", "1", "--dedup-key", "k", "--dedup-window", "0"])
      ])
      expect(Keel.failure(badMode, 2)).toMatch(/ignore.*replace.*debounce/)
      expect(Keel.failure(windowWithoutKey, 2)).toMatch(/dedupWindow/)
      expect(Keel.failure(modeWithoutKey, 2)).toMatch(/dedupMode/)
      expect(Keel.failure(zeroWindow, 2)).toMatch(/dedup-window|dedupWindow/)
      expect(Keel.json(await binary(["queue", "metrics", "strict", "--json"]))).toMatchObject({
        metrics: [{ queue: "strict", depth: 0, delayed: 0, inFlight: 0 }]
      })
    })
  })
}
