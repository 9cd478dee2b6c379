/**
 * trop's occupancy flags of the commands that probe without reserving, through the built `keel`
 * binary: `scan` and `port-info --include-occupancy` see UDP sockets, name what they found, and
 * honour `--skip-udp`, `--skip-tcp`, `--skip-occupancy-check` and trop.yaml's `skip_udp`.
 */
import * as dgram from "node:dgram"
import { mkdirSync, writeFileSync } from "node:fs"
import * as net from "node:net"
import { join } from "node:path"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import * as Keel from "./support/Keel.js"

/** This suite's ports: below Linux's ephemeral range (32768–60999, where any outgoing connection may hold a port) and apart from the other suites' regions. */
const base = 29_500

const held: Array<{ readonly close: (done: () => void) => void }> = []

const holdUdp = (port: number): Promise<void> =>
  new Promise((resolve, reject) => {
    const socket = dgram.createSocket("udp4")
    socket.once("error", reject)
    socket.bind(port, "127.0.0.1", () => {
      held.push(socket)
      resolve()
    })
  })

const holdTcp = (port: number): Promise<void> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen({ port, host: "127.0.0.1" }, () => {
      held.push(server)
      resolve()
    })
  })

describe("scan and port-info occupancy flags through the keel binary [sqlite]", () => {
  let database: Awaited<ReturnType<typeof Keel.freshDatabase>>
  let dir: string
  let env: Record<string, string>

  const keel = (args: ReadonlyArray<string>, cwd = dir) => Keel.keel(["port", ...args], { cwd, env })

  beforeAll(async () => {
    await Keel.ensureBuilt()
    database = await Keel.freshDatabase("sqlite")
    dir = join(database.dir, "project")
    mkdirSync(dir)
    const config = join(database.dir, "reservation.json")
    writeFileSync(config, JSON.stringify({ occupancy: { timeoutMs: 5_000 } }))
    env = {
      KEEL_DB: database.dsn,
      KEEL_RESERVATION_CONFIG: config,
      KEEL_USER_CONFIG: join(database.dir, "user.yaml"),
      XDG_DATA_HOME: database.dir
    }
  }, 300_000)

  afterEach(async () => {
    await Promise.all(held.splice(0).map((socket) => new Promise<void>((done) => socket.close(() => done()))))
  })

  afterAll(async () => {
    await database?.close()
  })

  it("scan names the protocol and address in use; --skip-udp and --skip-tcp leave those sockets out", async () => {
    await holdUdp(base)
    await holdTcp(base + 1)
    const range = `${base}-${base + 2}`
    const scanned = Keel.json(await keel(["scan", "--range", range, "--json"]))
    expect(scanned.occupied).toEqual([
      { port: base, reserved: false, inUse: [{ protocol: "udp", host: "127.0.0.1" }] },
      { port: base + 1, reserved: false, inUse: [{ protocol: "tcp", host: "127.0.0.1" }] }
    ])
    const table = Keel.ok(await keel(["scan", "--range", range]))
    expect(table).toContain("udp 127.0.0.1")
    const noUdp = Keel.json(await keel(["scan", "--range", range, "--skip-udp", "--json"]))
    expect(noUdp.occupied).toMatchObject([{ port: base + 1 }])
    const noTcp = Keel.json(await keel(["scan", "--range", range, "--skip-tcp", "--json"]))
    expect(noTcp.occupied).toMatchObject([{ port: base }])
  })

  it("scan honours trop.yaml's occupancy_check.skip_udp", async () => {
    await holdUdp(base + 10)
    const project = join(dir, "skipping")
    mkdirSync(project)
    writeFileSync(join(project, "trop.yaml"), "occupancy_check: { skip_udp: true }\n")
    const scanned = Keel.json(await keel(["scan", "--range", `${base + 10}-${base + 10}`, "--json"], project))
    expect(scanned.occupied).toEqual([])
  })

  it("port-info --include-occupancy names the socket; --skip-udp misses it; --skip-occupancy-check does not check", async () => {
    await holdUdp(base + 20)
    const port = String(base + 20)
    const info = Keel.json(await keel(["port-info", port, "--include-occupancy", "--json"]))
    expect(info).toMatchObject({ occupied: true, inUse: [{ protocol: "udp", host: "127.0.0.1" }] })
    expect(Keel.ok(await keel(["port-info", port, "--include-occupancy"]))).toContain(
      "in use: yes (udp 127.0.0.1)"
    )
    const skipped = Keel.json(await keel(["port-info", port, "--include-occupancy", "--skip-udp", "--json"]))
    expect(skipped).toMatchObject({ occupied: false, inUse: [] })
    const unchecked = Keel.json(
      await keel(["port-info", port, "--include-occupancy", "--skip-occupancy-check", "--json"])
    )
    expect(unchecked).toMatchObject({ occupied: null, inUse: null })
    const plain = Keel.json(await keel(["port-info", port, "--json"]))
    expect(plain).toMatchObject({ occupied: null })
    const needs = Keel.failure(await keel(["port-info", port, "--skip-udp"]), 2)
    expect(needs).toContain("--include-occupancy")
  })
})
