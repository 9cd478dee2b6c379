/**
 * trop's occupancy command line through the built `keel` binary: UDP sockets count, `--skip-udp`,
 * `--skip-tcp`, `--skip-occupancy-check` and trop.yaml's `occupancy_check.skip_udp` are honoured
 * by every reserving command, `--check-all-interfaces` sees a listener on a non-loopback address,
 * and `scan` / `port-info --include-occupancy` see a port only a UDP socket holds.
 */
import * as dgram from "node:dgram"
import { mkdirSync, writeFileSync } from "node:fs"
import * as net from "node:net"
import { networkInterfaces } from "node:os"
import { join } from "node:path"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import * as Keel from "./support/Keel.js"

/** This suite's ports: below Linux's ephemeral range (32768–60999, where any outgoing connection may hold a port) and apart from the other suites' regions. */
const base = 29_400

type Closable = { readonly close: (done: () => void) => void }

const held: Array<Closable> = []

/** Holds `port` on `host` with a UDP socket until the test ends. */
const holdUdp = (host: string, port: number): Promise<void> =>
  new Promise((resolve, reject) => {
    const socket = dgram.createSocket(net.isIPv6(host) ? "udp6" : "udp4")
    socket.once("error", reject)
    socket.bind(port, host, () => {
      held.push(socket)
      resolve()
    })
  })

/** Holds `port` on `host` with a TCP listener until the test ends. */
const holdTcp = (host: string, port: number): Promise<void> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen({ port, host }, () => {
      held.push(server)
      resolve()
    })
  })

/** An IPv4 address of this machine that is not loopback (a listener there is not on 127.0.0.1). */
const outerAddress = Object.values(networkInterfaces())
  .flat()
  .find((entry) => entry !== undefined && entry.family === "IPv4" && !entry.internal)?.address

describe("trop's occupancy flags through the keel binary [sqlite]", () => {
  let database: Awaited<ReturnType<typeof Keel.freshDatabase>>
  let root: string
  let env: Record<string, string>
  let next = 0

  /** A new project directory (no trop.yaml unless the test writes one). */
  const project = (name: string): string => {
    next += 1
    const dir = join(root, `${name}-${next}`)
    mkdirSync(dir, { recursive: true })
    return dir
  }

  const keel = (dir: string, args: ReadonlyArray<string>) => Keel.keel(["port", ...args], { cwd: dir, env })

  /** `keel port reserve` of the one-port range `port`, printing the port or failing. */
  const reserve = (dir: string, port: number, ...flags: ReadonlyArray<string>) =>
    keel(dir, ["reserve", "--tag", "web", "--range", `${port}-${port}`, ...flags])

  beforeAll(async () => {
    await Keel.ensureBuilt()
    database = await Keel.freshDatabase("sqlite")
    root = database.dir
    const config = join(root, "reservation.json")
    writeFileSync(config, JSON.stringify({ occupancy: { timeoutMs: 5_000 } }))
    env = {
      KEEL_DB: database.dsn,
      KEEL_RESERVATION_CONFIG: config,
      KEEL_USER_CONFIG: join(root, "user.yaml"),
      XDG_DATA_HOME: root
    }
  }, 300_000)

  afterEach(async () => {
    await Promise.all(held.splice(0).map((socket) => new Promise<void>((done) => socket.close(() => done()))))
  })

  afterAll(async () => {
    await database?.close()
  })

  it("a port only a UDP socket holds is passed over; --skip-udp takes it, --skip-tcp does not", async () => {
    const port = base + 1
    await holdUdp("127.0.0.1", port)
    const refused = Keel.failure(await reserve(project("udp"), port), 1)
    expect(refused).toContain(String(port))
    Keel.failure(await reserve(project("udp-skip-tcp"), port, "--skip-tcp"), 1)
    expect(Keel.ok(await reserve(project("udp-skip-udp"), port, "--skip-udp")).trim()).toBe(String(port))
  })

  it("trop.yaml's occupancy_check.skip_udp is honoured by reserve, autoreserve and reserve-group", async () => {
    const port = base + 10
    for (const offset of [0, 1, 2, 3]) await holdUdp("127.0.0.1", port + offset)
    /** A project whose trop.yaml skips UDP probes. */
    const skipping = (name: string): string => {
      const dir = project(name)
      const yaml = [
        "occupancy_check:",
        "  skip_udp: true",
        "reservations:",
        "  services:",
        "    web: { env: WEB_PORT }"
      ]
      writeFileSync(join(dir, "trop.yaml"), `${yaml.join("\n")}\n`)
      return dir
    }
    Keel.failure(await reserve(project("yaml-plain"), port), 1)
    expect(Keel.ok(await reserve(skipping("yaml-reserve"), port)).trim()).toBe(String(port))
    const auto = Keel.ok(
      await keel(skipping("yaml-autoreserve"), [
        "autoreserve",
        "--range",
        `${port + 1}-${port + 1}`,
        "--format",
        "json"
      ])
    )
    expect(JSON.parse(auto)).toMatchObject({
      reservations: [{ tag: "web", env: "WEB_PORT", port: port + 1 }]
    })
    const group = Keel.ok(
      await keel(skipping("yaml-group"), [
        "reserve-group",
        "api",
        "--range",
        `${port + 2}-${port + 2}`,
        "--format",
        "human"
      ])
    )
    expect(group.trim()).toBe(`api ${port + 2}`)
    // The environment overrides the file, as in trop.
    const overridden = await Keel.keel(
      ["port", "reserve", "--tag", "web", "--range", `${port + 3}-${port + 3}`],
      {
        cwd: skipping("yaml-env"),
        env: { ...env, TROP_SKIP_UDP: "false" }
      }
    )
    Keel.failure(overridden, 1)
  })

  it("--skip-occupancy-check (trop's name) and --no-occupancy-check hand out a held port", async () => {
    const port = base + 20
    await holdUdp("127.0.0.1", port)
    await holdTcp("127.0.0.1", port)
    expect(Keel.ok(await reserve(project("skip-check"), port, "--skip-occupancy-check")).trim()).toBe(
      String(port)
    )
    const other = project("no-check")
    expect(
      Keel.ok(
        await keel(other, [
          "reserve",
          "--tag",
          "web",
          "--range",
          `${port}-${port + 1}`,
          "--no-occupancy-check"
        ])
      ).trim()
    ).toBe(String(port + 1))
  })

  it.skipIf(outerAddress === undefined)(
    "--check-all-interfaces sees a listener on a non-loopback address that loopback probes miss",
    async () => {
      const port = base + 30
      await holdTcp(outerAddress ?? "", port)
      Keel.failure(await reserve(project("all-interfaces"), port, "--check-all-interfaces"), 1)
      expect(Keel.ok(await reserve(project("loopback-only"), port)).trim()).toBe(String(port))
    }
  )

  it("scan and port-info --include-occupancy see a port only a UDP socket holds", async () => {
    const port = base + 40
    await holdUdp("127.0.0.1", port)
    const dir = project("scan")
    const scanned = Keel.json(await keel(dir, ["scan", "--range", `${port - 1}-${port + 1}`, "--json"]))
    expect(scanned.occupied).toMatchObject([{ port, reserved: false }])
    const info = Keel.json(await keel(dir, ["port-info", String(port), "--include-occupancy", "--json"]))
    expect(info.occupied).toBe(true)
    const free = Keel.json(await keel(dir, ["port-info", String(port + 1), "--include-occupancy", "--json"]))
    expect(free.occupied).toBe(false)
  })
})
