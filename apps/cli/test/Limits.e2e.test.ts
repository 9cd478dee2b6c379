/**
 * A queue's limits and group settings on the command line, on each backend: `--concurrency-limit`,
 * `--rate-limit N/DURATION`, `--group-concurrency` and `--group-on-dead` on `keel queue create` and
 * `keel queue configure`, shown back by `queue info` and `queue list` (human and `--json`), removed
 * with `none`; a bad value of each flag is one line on stderr, exit 2, nothing created or changed.
 */
import { afterAll, beforeAll, expect, it } from "vitest"
import * as Keel from "./support/Keel.js"

const limits = [
  "--concurrency-limit",
  "5",
  "--rate-limit",
  "100/1s",
  "--group-concurrency",
  "3",
  "--group-on-dead",
  "block"
]

/** The settings as `--json` encodes them (the rate limit's interval in milliseconds). */
const limited = {
  concurrencyLimit: 5,
  rateLimit: { limit: 100, interval: 1000 },
  groupConcurrency: 3,
  groupOnDead: "block"
}

for (const kind of Keel.kinds) {
  Keel.describeBackend(`keel queue limits [${kind}]`, () => {
    let database: Awaited<ReturnType<typeof Keel.freshDatabase>>
    let env: Record<string, string>
    const keel = (args: ReadonlyArray<string>) => Keel.keel(args, { env })
    const infoOf = async (queue: string) => Keel.json(await keel(["queue", "info", queue, "--json"])).queue

    beforeAll(async () => {
      await Keel.ensureBuilt()
      database = await Keel.freshDatabase(kind)
      env = { KEEL_DB: database.dsn, XDG_DATA_HOME: database.dir }
    })
    afterAll(() => database.close())

    it("create sets the four settings; info and list show them; configure changes them and none removes a limit", async () => {
      const created = Keel.json(await keel(["queue", "create", "limited", ...limits, "--json"]))
      expect(created.queue).toMatchObject({ name: "limited", ...limited })
      expect(await infoOf("limited")).toMatchObject(limited)
      const listed = Keel.json(await keel(["queue", "list", "--json"])).queues
      expect(listed).toEqual(
        expect.arrayContaining([expect.objectContaining({ name: "limited", ...limited })])
      )

      const table = Keel.ok(await keel(["queue", "info", "limited"]))
      expect(table).toMatch(
        /^QUEUE\s+VISIBILITY TIMEOUT\s+MAX DELIVERIES\s+RETENTION\s+CONCURRENCY LIMIT\s+RATE LIMIT\s+GROUP CONCURRENCY\s+GROUP ON DEAD\s+EVENTS\s+CREATED\n/
      )
      expect(table).toMatch(/\nlimited\s+30s\s+5\s+7d\s+5\s+100\/1s\s+3\s+block\s+no\s+\d{4}-/)
      Keel.ok(await keel(["queue", "create", "plain"]))
      expect(Keel.ok(await keel(["queue", "list"]))).toMatch(
        /\nplain\s+30s\s+5\s+7d\s+none\s+none\s+1\s+skip\s+no\s+\d{4}-/
      )

      const changed = Keel.json(
        await keel([
          "queue",
          "configure",
          "limited",
          "--concurrency-limit",
          "none",
          "--rate-limit",
          "5/250ms",
          "--group-concurrency",
          "1",
          "--group-on-dead",
          "skip",
          "--json"
        ])
      )
      expect(changed.queue).toMatchObject({
        name: "limited",
        concurrencyLimit: null,
        rateLimit: { limit: 5, interval: 250 },
        groupConcurrency: 1,
        groupOnDead: "skip"
      })
      expect(Keel.ok(await keel(["queue", "info", "limited"]))).toMatch(
        /\nlimited\s+.*\s+none\s+5\/250ms\s+1\s+skip\s/
      )

      // Absent flags keep their value; none removes only the limit it is given for.
      expect(
        Keel.ok(
          await keel(["queue", "configure", "limited", "--rate-limit", "none", "--concurrency-limit", "9"])
        )
      ).toBe("queue limited is configured\n")
      expect(await infoOf("limited")).toMatchObject({
        concurrencyLimit: 9,
        rateLimit: null,
        groupConcurrency: 1,
        groupOnDead: "skip",
        maxDeliveries: 5
      })
      expect(
        Keel.ok(await keel(["queue", "configure", "limited", "--rate-limit", "600/1m", "--quiet"]))
      ).toBe("")
      expect(await infoOf("limited")).toMatchObject({ rateLimit: { limit: 600, interval: 60_000 } })
    })

    it("a bad value of each flag is one line, exit 2, and creates or changes nothing", async () => {
      Keel.ok(await keel(["queue", "create", "guarded", ...limits]))
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, RegExp]> = [
        [["--concurrency-limit", "lots"], /--concurrency-limit: "lots" is not a whole number or none/],
        [["--concurrency-limit", "0"], /concurrencyLimit/],
        [["--concurrency-limit", "100001"], /concurrencyLimit/],
        [["--rate-limit", "100"], /--rate-limit: "100" is not N\/DURATION/],
        [["--rate-limit", "x/1s"], /--rate-limit: "x\/1s" is not N\/DURATION/],
        [["--rate-limit", "10/soon"], /--rate-limit: "10\/soon" is not N\/DURATION/],
        [["--rate-limit", "0/1s"], /rateLimit\.limit/],
        [["--rate-limit", "10/2d"], /rateLimit\.interval/],
        [["--group-concurrency", "many"], /'many' is not a integer/],
        [["--group-concurrency", "0"], /groupConcurrency/],
        [["--group-concurrency", "1001"], /groupConcurrency/],
        [["--group-on-dead", "explode"], /skip.*block/]
      ]
      for (const [flags, message] of cases) {
        const refused = Keel.failure(await keel(["queue", "create", "refused", ...flags]), 2)
        expect({ flags, refused }).toEqual({ flags, refused: expect.stringMatching(message) })
        const unchanged = Keel.failure(await keel(["queue", "configure", "guarded", ...flags]), 2)
        expect({ flags, unchanged }).toEqual({ flags, unchanged: expect.stringMatching(message) })
      }
      Keel.failure(await keel(["queue", "info", "refused"]), 1)
      expect(await infoOf("guarded")).toMatchObject(limited)
      expect(
        Keel.failure(await keel(["queue", "configure", "ghost", "--concurrency-limit", "1"]), 1)
      ).toMatch(/ghost/)
    })
  })
}
