/**
 * The built `keel` binary, driven as a child process on each backend (SQLite file, a fresh
 * PostgreSQL database): what it prints on stdout and stderr, its `--json` documents and its exit
 * codes. Backend-independent behaviour (usage errors, secrets, the default DSN) is in
 * `Globals.e2e.test.ts`.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, expect, it } from "vitest"
import * as Keel from "./support/Keel.js"

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** `value` as a JSON object (failing the test when it is not one). */
const record = (value: unknown): Record<string, unknown> => {
  if (!isRecord(value)) throw new Error(`expected a JSON object: ${JSON.stringify(value)}`)
  return value
}

/** `value` as an array of JSON objects (failing the test when it is not one). */
const list = (value: unknown): ReadonlyArray<Record<string, unknown>> => {
  if (!Array.isArray(value)) throw new Error(`expected an array: ${JSON.stringify(value)}`)
  return value.map(record)
}

/** `value` as an array of numbers (failing the test when it is not one). */
const numbers = (value: unknown): ReadonlyArray<number> => {
  if (!Array.isArray(value) || !value.every((item) => typeof item === "number")) {
    throw new Error(`expected an array of numbers: ${JSON.stringify(value)}`)
  }
  return value.filter((item): item is number => typeof item === "number")
}

for (const kind of Keel.kinds) {
  Keel.describeBackend(`keel [${kind}]`, () => {
    // A port range of each backend's own: the backends run at the same time, and a reservation
    // probes its port by binding it, which would see the other backend's probe of the same port.
    // Below Linux's ephemeral range (32768–60999, where any outgoing connection may hold a port): the
    // occupancy check would otherwise see another test's client socket as a live service.
    const min = 25_000 + 100 * Keel.kinds.indexOf(kind)
    const max = min + 99
    const lone = String(max - 1)
    let database: Awaited<ReturnType<typeof Keel.freshDatabase>>
    let project: string
    let env: Record<string, string>

    beforeAll(async () => {
      await Keel.ensureBuilt()
      database = await Keel.freshDatabase(kind)
      project = join(database.dir, "project")
      mkdirSync(project)
      const config = join(database.dir, "reservation.json")
      // A probe that outlives its timeout counts the port as taken; the default 250 ms is shorter
      // than a busy CI box may leave a freshly started process waiting for the CPU.
      writeFileSync(config, JSON.stringify({ range: { min, max }, occupancy: { timeoutMs: 5_000 } }))
      env = { KEEL_DB: database.dsn, KEEL_RESERVATION_CONFIG: config, XDG_DATA_HOME: database.dir }
    })

    afterAll(async () => {
      await database?.close()
    })

    const keel = (args: ReadonlyArray<string>, options: Keel.RunOptions = {}) =>
      Keel.keel(args, { cwd: project, ...options, env: { ...env, ...options.env } })

    it("port reserve prints only the port, for the working directory, and gives the same (path, tag) its port back", async () => {
      const first = Keel.ok(await keel(["port", "reserve", "--tag", "web"]))
      expect(first).toMatch(/^\d+\n$/)
      const port = Number(first)
      expect(port).toBeGreaterThanOrEqual(min)
      expect(port).toBeLessThanOrEqual(max)
      expect(Keel.ok(await keel(["port", "reserve", "--tag", "web"]))).toBe(first)

      const api = Keel.json(await keel(["port", "reserve", "--tag", "api", "--json"]))
      expect(api).toMatchObject({
        outcome: "created",
        reservation: { path: project, tag: "api", project: null, task: null, expiresAt: null }
      })
      expect(api.port).not.toBe(port)
      expect(record(api.reservation).port).toBe(api.port)
      expect(typeof record(api.reservation).createdAt).toBe("string")

      mkdirSync(join(project, "sub"))
      const group = Keel.json(
        await keel(["port", "reserve-group", "db", "cache", "--path", "sub", "--json"], {
          cwd: project
        })
      )
      expect(group.path).toBe(join(project, "sub"))
      const members = list(group.reservations)
      expect(members.map((member) => member.tag)).toEqual(["db", "cache"])

      const listed = list(Keel.json(await keel(["port", "list", "--json"])).reservations)
      const ports = listed.map((reservation) => reservation.port)
      expect(ports).toHaveLength(4)
      expect(new Set(ports).size).toBe(4)

      const shown = Keel.json(await keel(["port", "show", "--tag", "web", "--json"]))
      expect(record(shown.reservation)).toMatchObject({ path: project, tag: "web", port })
      expect(Keel.ok(await keel(["port", "show", "--port", String(port)]))).toContain(`${port}  web`)

      const released = Keel.json(await keel(["port", "release", "--tag", "web", "--json"]))
      expect(released).toMatchObject({ dryRun: false, released: [{ tag: "web", port }] })
      expect(Keel.failure(await keel(["port", "show", "--tag", "web"]), 1)).toMatch(
        /not found|no reservation/i
      )

      const cleaned = Keel.json(await keel(["port", "cleanup", "--dry-run", "--json"]))
      expect(cleaned).toEqual({ dryRun: true, removed: [] })
    })

    it("a range without a free port refuses with exit 1 and one line (one JSON line with --json)", async () => {
      Keel.ok(await keel(["port", "reserve", "--tag", "only", "--range", `${lone}-${lone}`]))
      const line = Keel.failure(
        await keel(["port", "reserve", "--tag", "other", "--range", `${lone}-${lone}`]),
        1
      )
      expect(line).toContain(lone)
      const result = await keel(["port", "reserve", "--tag", "other", "--range", `${lone}-${lone}`, "--json"])
      expect(result.code).toBe(1)
      expect(result.stdout).toBe("")
      const document = JSON.parse(result.stderr)
      expect(document).toMatchObject({ error: { _tag: "NoPortAvailable", tag: "other" }, exitCode: 1 })
    })

    it("queue send, send-batch, read, archive, delete and release by lease; metrics count them", async () => {
      expect(
        Keel.json(await keel(["queue", "create", "jobs", "--json", "--max-deliveries", "3"]))
      ).toMatchObject({
        queue: { name: "jobs", maxDeliveries: 3, visibilityTimeout: 30_000 }
      })
      Keel.failure(await keel(["queue", "create", "jobs"]), 1)
      const one = Keel.ok(await keel(["queue", "send", "jobs", '{"n":1}']))
      expect(one).toMatch(/^\d+\n$/)
      expect(Keel.ok(await keel(["queue", "send", "jobs"], { input: '{"n":2}\n' }))).toMatch(/^\d+\n$/)
      const batch = Keel.json(
        await keel(["queue", "send-batch", "jobs", "--json"], { input: '{"n":3}\n\n{"n":4}\n' })
      )
      expect(batch).toMatchObject({ queue: "jobs" })
      expect(batch.ids).toHaveLength(2)
      const file = join(database.dir, "batch.jsonl")
      writeFileSync(file, '{"payload":{"n":5},"priority":-1}\n')
      Keel.ok(await keel(["queue", "send-batch", "jobs", "--file", file, "--envelopes", "--quiet"]))

      const read = Keel.json(await keel(["queue", "read", "jobs", "-n", "10", "--json"]))
      const messages = list(read.messages)
      expect(messages.map((message) => record(message.payload).n)).toEqual([5, 1, 2, 3, 4])
      for (const message of messages) {
        expect(message).toMatchObject({ queue: "jobs", deliveries: 1 })
        expect(typeof message.id).toBe("number")
        expect(typeof message.lease).toBe("string")
      }
      const [first, second, third] = messages
      if (first === undefined || second === undefined || third === undefined) throw new Error("too few")
      const ack = (action: string, message: Record<string, unknown>, ...extra: Array<string>) =>
        keel(["queue", action, "jobs", String(message.id), String(message.lease), ...extra])

      expect(Keel.ok(await ack("archive", first))).toBe(`archived message ${first.id}\n`)
      expect(Keel.failure(await ack("archive", first), 1)).toContain("no longer held")
      expect(Keel.json(await ack("delete", second, "--json"))).toEqual({
        queue: "jobs",
        id: second.id,
        action: "deleted"
      })
      expect(Keel.ok(await ack("release", third, "--quiet"))).toBe("")
      Keel.failure(await keel(["queue", "archive", "jobs", String(third.id), "not-the-lease"]), 1)

      const metrics = Keel.json(await keel(["queue", "metrics", "jobs", "--json"]))
      expect(list(metrics.metrics)).toEqual([
        expect.objectContaining({ queue: "jobs", depth: 1, inFlight: 2, archived: 1, dead: 0 })
      ])
      const info = Keel.json(await keel(["queue", "info", "jobs", "--json"]))
      expect(info).toMatchObject({ queue: { name: "jobs" }, metrics: { depth: 1, inFlight: 2 } })
      expect(Keel.ok(await keel(["queue", "list"]))).toMatch(/^QUEUE\s+VISIBILITY TIMEOUT.*\njobs\s/)
      const purged = Keel.json(await keel(["queue", "purge", "jobs", "--json"]))
      expect(purged).toMatchObject({ queue: "jobs", removed: { messages: 3 } })
    })

    it("consume runs the command per message: exit 0 archives, a failure releases; SIGTERM lets a running command finish", async () => {
      const out = join(database.dir, "consumed")
      mkdirSync(out)
      Keel.ok(await keel(["queue", "create", "work", "--quiet"]))
      const sent = Keel.json(
        await keel(["queue", "send-batch", "work", "--json"], {
          input: '{"n":1}\n{"n":2,"fail":true}\n{"n":3}\n'
        })
      )
      const ids = numbers(sent.ids)
      expect(ids).toHaveLength(3)
      const command = `cat > "$OUT/$KEEL_MESSAGE_ID.json"; if grep -q fail "$OUT/$KEEL_MESSAGE_ID.json"; then exit 3; fi`
      const consumed = await keel(
        ["queue", "consume", "work", command, "--max-messages", "3", "--backoff", "1h", "--json"],
        { env: { OUT: out } }
      )
      expect(consumed.code, consumed.stderr).toBe(0)
      expect(Keel.json(consumed)).toMatchObject({
        queue: "work",
        stats: { processed: 2, failed: 1, deadLettered: 0 }
      })
      expect(consumed.stderr).toContain(
        `message ${ids[1]}: CommandFailed: command exited with code 3; released`
      )
      const payloads = ids.map((id) => JSON.parse(readFileSync(join(out, `${id}.json`), "utf8")))
      expect(payloads).toEqual([{ n: 1 }, { n: 2, fail: true }, { n: 3 }])
      const after = list(Keel.json(await keel(["queue", "metrics", "work", "--json"])).metrics)
      expect(after).toEqual([expect.objectContaining({ archived: 2, delayed: 1, inFlight: 0 })])

      // A graceful stop: the running command finishes and its message is archived; then a
      // command that outlives --shutdown-timeout is killed and its message released.
      Keel.ok(await keel(["queue", "purge", "work", "--quiet"]))
      const slowId = Keel.ok(await keel(["queue", "send", "work", '{"slow":1}', "--quiet"])).trim()
      const slow = `touch "$OUT/started-$KEEL_MESSAGE_ID"; sleep 1; touch "$OUT/done-$KEEL_MESSAGE_ID"`
      const worker = Keel.start(["queue", "consume", "work", slow, "--poll-interval", "100ms"], {
        cwd: project,
        env: { ...env, OUT: out }
      })
      await Keel.eventually(() => existsSync(join(out, `started-${slowId}`)), 30_000, "the command to start")
      worker.child.kill("SIGTERM")
      const stopped = await worker.exited
      expect(stopped.code, stopped.stderr).toBe(0)
      expect(existsSync(join(out, `done-${slowId}`))).toBe(true)
      expect(stopped.stderr).toContain(`message ${slowId}: done, archived`)
      expect(stopped.stderr).toMatch(/stopped: 1 done/)

      const stuckId = Keel.ok(await keel(["queue", "send", "work", '{"stuck":1}', "--quiet"])).trim()
      const stuck = Keel.start(
        [
          "queue",
          "consume",
          "work",
          'touch "$OUT/started-$KEEL_MESSAGE_ID"; sleep 30',
          "--shutdown-timeout",
          "300ms"
        ],
        { cwd: project, env: { ...env, OUT: out } }
      )
      await Keel.eventually(
        () => existsSync(join(out, `started-${stuckId}`)),
        30_000,
        "the stuck command to start"
      )
      stuck.child.kill("SIGTERM")
      const ended = await stuck.exited
      expect(ended.code, ended.stderr).toBe(0)
      expect(ended.stderr).toContain(`message ${stuckId}: stopped by shutdown; released`)
      const final = list(Keel.json(await keel(["queue", "metrics", "work", "--json"])).metrics)
      expect(final).toEqual([expect.objectContaining({ depth: 1, inFlight: 0, archived: 3 })])
      expect(Keel.json(await keel(["queue", "workers", "work", "--json"]))).toEqual({ workers: [] })
    })

    it("cursor set, get, list and delete; an older position is stale; a bad one exits 2", async () => {
      expect(Keel.ok(await keel(["cursor", "set", "replica-1", "1700000000000-3"]))).toBe(
        "replica-1 at 1700000000000-3\n"
      )
      expect(Keel.ok(await keel(["cursor", "get", "replica-1"]))).toBe("1700000000000-3\n")
      expect(
        Keel.json(await keel(["cursor", "set", "replica-1", "1600000000000-0", "--json"]))
      ).toMatchObject({
        namespace: "default",
        peer: "replica-1",
        outcome: "stale",
        position: "1700000000000-3"
      })
      expect(Keel.json(await keel(["cursor", "get", "replica-1", "--json"]))).toEqual({
        namespace: "default",
        peer: "replica-1",
        position: "1700000000000-3",
        found: true
      })
      Keel.ok(await keel(["cursor", "set", "replica-2", "42", "--namespace", "other", "--quiet"]))
      const listed = Keel.json(await keel(["cursor", "list", "--namespace", "other", "--json"]))
      expect(listed).toMatchObject({ namespace: "other", cursors: [{ peer: "replica-2", position: "42" }] })
      Keel.failure(await keel(["cursor", "set", "replica-1", "not-a-position"]), 2)
      expect(Keel.json(await keel(["cursor", "delete", "replica-1", "--json"]))).toMatchObject({
        deleted: true
      })
      expect(Keel.failure(await keel(["cursor", "get", "replica-1"]), 1)).toBe(
        'keel: no cursor for peer "replica-1"'
      )
      expect(Keel.ok(await keel(["cursor", "get", "replica-1", "--or-start"]))).toBe("0\n")
    })

    it("db status lists every package's applied migrations", async () => {
      Keel.ok(await keel(["db", "migrate", "--quiet"]))
      const status = Keel.json(await keel(["db", "status", "--json"]))
      expect(status.backend).toBe(kind)
      const packages = list(status.packages)
      expect(packages.map((entry) => entry.package)).toEqual(["queue", "schedule", "reservation", "cursor"])
      for (const entry of packages) {
        expect(entry.version).toBe(entry.latest)
        for (const step of list(entry.migrations)) expect(step.state).toBe("applied")
      }
    })
  })
}
