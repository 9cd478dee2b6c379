/**
 * The built `keel` binary on a `turso:` DSN (the Turso engine): a queue send and read through
 * `--db turso:…`, and `keel serve` on the same file. The engine is a native package, so the bundle
 * keeps it external: it is a dependency of @keel/cli (the first test fails if it is not).
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Keel from "./support/Keel.js"

describe("keel on turso:", () => {
  it("the engine is installed where the built binary resolves its external packages", () => {
    expect(existsSync(join(dirname(Keel.bin), "..", "node_modules", "@tursodatabase", "database"))).toBe(true)
  })

  const dir = mkdtempSync(join(tmpdir(), "keel-cli-turso-"))
  const dsn = `turso:${join(dir, "keel.db")}`
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  beforeAll(() => Keel.ensureBuilt())

  it("queue create, send and read through --db turso:…; the message comes back once", async () => {
    Keel.ok(await Keel.keel(["--db", dsn, "queue", "create", "jobs", "--quiet"]))
    const id = Keel.ok(await Keel.keel(["--db", dsn, "queue", "send", "jobs", '{"n":1}'])).trim()
    expect(id).toMatch(/^\d+$/)
    const read = Keel.json(await Keel.keel(["--db", dsn, "queue", "read", "jobs", "-n", "10", "--json"]))
    expect(read.messages).toMatchObject([{ id: Number(id), payload: { n: 1 }, deliveries: 1 }])
    const again = Keel.json(await Keel.keel(["--db", dsn, "queue", "read", "jobs", "-n", "10", "--json"]))
    expect(again.messages).toEqual([])
  })

  it("keel serve runs on the turso: file and answers /health and the queue's metrics", async () => {
    const server = Keel.start(["serve", "--host", "127.0.0.1", "--port", "0"], { env: { KEEL_DB: dsn } })
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
    expect((await fetch(`${url}/health`)).status).toBe(200)
    const queues = await fetch(`${url}/queues`)
    expect(queues.status).toBe(200)
    expect(JSON.stringify(await queues.json())).toContain("jobs")
    server.child.kill("SIGTERM")
    const stopped = await server.exited
    expect(stopped.code, stopped.stderr).toBe(0)
  })
})
