/**
 * `keel cursor` lag, reset, expire, export/import and fence, end to end through the built binary,
 * on SQLite and PostgreSQL: the Kafka-style tools over the cursor store.
 */
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, expect, it } from "vitest"
import * as Keel from "./support/Keel.js"

for (const kind of Keel.kinds) {
  Keel.describeBackend(`keel cursor tools [${kind}]`, () => {
    let database: Awaited<ReturnType<typeof Keel.freshDatabase>>
    let env: Record<string, string>
    const keel = (args: ReadonlyArray<string>, input?: string) =>
      Keel.keel(args, input === undefined ? { env } : { env, input })

    beforeAll(async () => {
      await Keel.ensureBuilt()
      database = await Keel.freshDatabase(kind)
      env = { KEEL_DB: database.dsn, XDG_DATA_HOME: database.dir }
    })

    afterAll(async () => {
      await database?.close()
    })

    it("the new subcommands print their usage without opening the database", async () => {
      for (const command of ["lag", "reset", "expire", "export", "import", "fence"]) {
        const help = Keel.ok(await keel(["cursor", command, "--help"]))
        expect(help, command).toContain(`$ ${command}`)
      }
    })

    it("lag against one head and against a head per peer; a namespace keeps its kind", async () => {
      Keel.ok(
        await keel(["cursor", "set", "a", "10", "--namespace", "offsets", "--kind", "integer", "--quiet"])
      )
      Keel.ok(await keel(["cursor", "set", "b", "40", "--namespace", "offsets", "--quiet"]))
      const lags = Keel.json(
        await keel(["cursor", "lag", "--namespace", "offsets", "--head", "50", "--json"])
      )
      expect(lags).toMatchObject({
        kind: "integer",
        lags: [
          { peer: "a", distance: "40", unit: "offsets", behind: true },
          { peer: "b", distance: "10", unit: "offsets", behind: true }
        ]
      })
      const heads = join(database.dir, "heads.json")
      writeFileSync(heads, JSON.stringify({ a: "10", b: "45" }))
      const perPeer = Keel.json(
        await keel(["cursor", "lag", "--namespace", "offsets", "--heads", heads, "--json"])
      )
      expect(perPeer).toMatchObject({
        lags: [
          { peer: "a", behind: false },
          { peer: "b", distance: "5" }
        ]
      })
      expect(Keel.ok(await keel(["cursor", "lag", "a", "--namespace", "offsets", "--head", "12"]))).toContain(
        "2"
      )
      // A stream id is not an integer offset; the declared kind cannot be changed.
      Keel.failure(await keel(["cursor", "set", "a", "11-0", "--namespace", "offsets"]), 2)
      expect(
        Keel.failure(await keel(["cursor", "get", "a", "--namespace", "offsets", "--kind", "lsn"]), 2)
      ).toContain("kind integer")
      Keel.failure(await keel(["cursor", "lag", "--namespace", "offsets"]), 2)
    })

    it("reset to a position, by a shift and to a time, with a dry run that writes nothing", async () => {
      Keel.ok(await keel(["cursor", "set", "r1", "100", "--quiet"]))
      Keel.ok(await keel(["cursor", "set", "r2", "1700000000000-4", "--quiet"]))
      const dry = Keel.json(
        await keel(["cursor", "reset", "--peer", "r1", "--shift-by", "-30", "--dry-run", "--json"])
      )
      expect(dry).toMatchObject({ dryRun: true, changes: [{ peer: "r1", from: "100", to: "70" }] })
      expect(Keel.ok(await keel(["cursor", "get", "r1"]))).toBe("100\n")
      Keel.ok(await keel(["cursor", "reset", "--peer", "r1", "--shift-by", "-30", "--quiet"]))
      expect(Keel.ok(await keel(["cursor", "get", "r1"]))).toBe("70\n")
      Keel.ok(
        await keel([
          "cursor",
          "reset",
          "--peer",
          "r2",
          "--to-datetime",
          "2023-11-14T22:13:20.000Z",
          "--quiet"
        ])
      )
      expect(Keel.ok(await keel(["cursor", "get", "r2"]))).toBe("1700000000000-0\n")
      Keel.ok(await keel(["cursor", "reset", "--to", "5", "--quiet"]))
      expect(Keel.ok(await keel(["cursor", "get", "r2"]))).toBe("5\n")
      // Exactly one target; a bad one writes nothing.
      Keel.failure(await keel(["cursor", "reset", "--to", "5", "--to-earliest"]), 2)
      Keel.failure(await keel(["cursor", "reset", "--to", "5-"]), 2)
      Keel.failure(await keel(["cursor", "reset", "--peer", "r2", "--shift-by", "x"]), 2)
      expect(Keel.ok(await keel(["cursor", "get", "r1"]))).toBe("5\n")
    })

    it("export and import between namespaces; a bad document writes nothing", async () => {
      Keel.ok(
        await keel([
          "cursor",
          "set",
          "x",
          '{"p0":5,"p1":2}',
          "--namespace",
          "maps",
          "--kind",
          "json-map",
          "--quiet"
        ])
      )
      const exported = Keel.ok(await keel(["cursor", "export", "--namespace", "maps"]))
      expect(JSON.parse(exported)).toMatchObject({
        kind: "json-map",
        cursors: [{ peer: "x", position: '{"p0":5,"p1":2}' }]
      })
      const bad = JSON.stringify({
        namespace: "maps",
        kind: "json-map",
        cursors: [{ peer: "y", position: "[]" }]
      })
      Keel.failure(await keel(["cursor", "import", "--namespace", "copy"], bad), 2)
      Keel.failure(await keel(["cursor", "import", "--namespace", "copy"], "not json"), 2)
      Keel.ok(await keel(["cursor", "import", "--namespace", "copy", "--quiet"], exported))
      expect(Keel.ok(await keel(["cursor", "get", "x", "--namespace", "copy"]))).toBe('{"p0":5,"p1":2}\n')
      const older = JSON.stringify({
        namespace: "maps",
        kind: "json-map",
        cursors: [{ peer: "x", position: '{"p0":4,"p1":2}' }]
      })
      expect(
        Keel.json(await keel(["cursor", "import", "--namespace", "copy", "--json"], older))
      ).toMatchObject({
        written: 0,
        skipped: ["x"]
      })
      Keel.ok(
        await keel(["cursor", "import", "--namespace", "copy", "--mode", "overwrite", "--quiet"], older)
      )
      expect(Keel.ok(await keel(["cursor", "get", "x", "--namespace", "copy"]))).toBe('{"p0":4,"p1":2}\n')
    })

    it("expire deletes idle cursors (dry run first); fence takes the next epoch", async () => {
      Keel.ok(await keel(["cursor", "set", "idle", "1", "--namespace", "expiry", "--quiet"]))
      expect(
        Keel.json(await keel(["cursor", "expire", "--namespace", "expiry", "--idle-for", "1h", "--json"]))
      ).toMatchObject({
        expired: []
      })
      await new Promise((resolve) => setTimeout(resolve, 50))
      expect(
        Keel.json(
          await keel([
            "cursor",
            "expire",
            "--namespace",
            "expiry",
            "--idle-for",
            "1ms",
            "--dry-run",
            "--json"
          ])
        )
      ).toMatchObject({ dryRun: true, expired: ["idle"] })
      expect(Keel.ok(await keel(["cursor", "get", "idle", "--namespace", "expiry"]))).toBe("1\n")
      Keel.ok(await keel(["cursor", "expire", "--namespace", "expiry", "--idle-for", "1ms", "--quiet"]))
      Keel.failure(await keel(["cursor", "get", "idle", "--namespace", "expiry"]), 1)
      Keel.failure(await keel(["cursor", "expire", "--idle-for", "soon"]), 2)
      const first = Keel.json(await keel(["cursor", "fence", "--namespace", "expiry", "--json"]))
      const second = Keel.json(await keel(["cursor", "fence", "--namespace", "expiry", "--json"]))
      expect(Number(second.fence)).toBe(Number(first.fence) + 1)
    })
  })
}
