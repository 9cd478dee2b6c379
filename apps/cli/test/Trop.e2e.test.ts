/**
 * trop's documented workflows end to end through the built `keel` binary, on SQLite and
 * PostgreSQL: init, autoreserve from a project file in a parent directory (evaluated by a real
 * shell, with hostile paths and tags), list in every format, exclusions, scan, prune/expire,
 * assertions, migrate — and `migrate` and exhaustion-triggered pruning raced by 10 processes.
 */
import { execFile } from "node:child_process"
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import * as net from "node:net"
import { join } from "node:path"
import { promisify } from "node:util"
import { afterAll, beforeAll, expect, it } from "vitest"
import * as Keel from "./support/Keel.js"

const run = promisify(execFile)

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const records = (value: unknown): ReadonlyArray<Record<string, unknown>> => {
  if (!Array.isArray(value) || !value.every(isRecord))
    throw new Error(`expected objects: ${JSON.stringify(value)}`)
  return value
}

for (const kind of Keel.kinds) {
  Keel.describeBackend(`trop workflows [${kind}]`, () => {
    // Below Linux's ephemeral range (32768–60999, where any outgoing connection may hold a port): the
    // occupancy check would otherwise see another test's client socket as a live service.
    const min = 24_000 + 200 * Keel.kinds.indexOf(kind)
    const max = min + 49
    let database: Awaited<ReturnType<typeof Keel.freshDatabase>>
    let root: string
    let project: string
    let env: Record<string, string>

    beforeAll(async () => {
      await Keel.ensureBuilt()
      database = await Keel.freshDatabase(kind)
      root = database.dir
      // A hostile project directory: quotes, a command substitution, a backquote, spaces.
      project = join(root, `it's $(touch pwned) \`touch pwned2\` "x"`)
      mkdirSync(join(project, "src", "deep"), { recursive: true })
      const config = join(root, "reservation.json")
      writeFileSync(config, JSON.stringify({ occupancy: { timeoutMs: 5_000 } }))
      writeFileSync(join(root, "user.yaml"), `excluded_ports: [${max}]\n`)
      env = {
        KEEL_DB: database.dsn,
        KEEL_RESERVATION_CONFIG: config,
        KEEL_USER_CONFIG: join(root, "user.yaml"),
        XDG_DATA_HOME: root
      }
    })

    afterAll(async () => {
      await database?.close()
    })

    const keel = (args: ReadonlyArray<string>, options: Keel.RunOptions = {}) =>
      Keel.keel(args, { cwd: project, ...options, env: { ...env, ...options.env } })

    it("init writes a trop.yaml that validate accepts; a bad key is an error naming the file and the key", async () => {
      Keel.ok(await keel(["port", "init", "--project", "app"]))
      expect(readFileSync(join(project, "trop.yaml"), "utf8")).toContain('project: "app"')
      Keel.failure(await keel(["port", "init"]), 2)
      writeFileSync(
        join(project, "trop.yaml"),
        [
          "project: app",
          `ports: { min: ${min}, max: ${max} }`,
          "reservations:",
          "  services:",
          "    web: { env: WEB_PORT }",
          "    '$(touch pwned3)': { env: EVIL_PORT }",
          "    api-server: {}",
          ""
        ].join("\n")
      )
      expect(Keel.ok(await keel(["port", "validate", "trop.yaml"]))).toContain("valid")
      writeFileSync(join(root, "bad.yaml"), "ports: { min: 5000, maxx: 6000 }\n")
      const bad = Keel.failure(await keel(["port", "validate", join(root, "bad.yaml")]), 2)
      expect(bad).toContain(join(root, "bad.yaml"))
      expect(bad).toContain("ports.maxx")
    }, 120_000)

    it("autoreserve from a subdirectory reserves the parent's trop.yaml group; its export is safe to eval", async () => {
      const deep = join(project, "src", "deep")
      const document = Keel.json(await keel(["port", "autoreserve", "--format", "json"], { cwd: deep }))
      expect(document.path).toBe(project)
      const reserved = records(document.reservations)
      expect(reserved.map((entry) => entry.env)).toEqual(["WEB_PORT", "EVIL_PORT", "API_SERVER"])
      const ports = reserved.map((entry) => Number(entry.port))
      expect(new Set(ports).size).toBe(3)
      for (const port of ports) expect(port >= min && port < max).toBe(true)
      const script = `set -eu; eval "$("$KEEL_BIN" port autoreserve --format export)"; printf '%s\\n' "$WEB_PORT" "$EVIL_PORT" "$API_SERVER" "$KEEL_PORTS_PATH"`
      const shell = await run("bash", ["-c", script], {
        cwd: deep,
        env: { PATH: process.env.PATH ?? "", HOME: root, ...env, KEEL_BIN: Keel.bin }
      })
      expect(shell.stdout.split("\n").slice(0, 4)).toEqual([...ports.map(String), project])
      for (const name of ["pwned", "pwned2", "pwned3"]) {
        expect(
          existsSync(join(deep, name)) || existsSync(join(project, name)) || existsSync(join(root, name))
        ).toBe(false)
      }
      const dotenv = Keel.ok(await keel(["port", "autoreserve", "--format", "dotenv"], { cwd: deep }))
      expect(dotenv).toContain(`WEB_PORT='${ports[0]}'`)
      expect(dotenv).toContain('KEEL_PORTS_PATH="')
      const fish = Keel.ok(await keel(["port", "autoreserve", "--shell", "fish"], { cwd: deep }))
      expect(fish).toContain(`set -gx WEB_PORT '${ports[0]}'`)
      expect(
        Keel.ok(await keel(["port", "reserve-group", join(project, "trop.yaml"), "--format", "human"]))
      ).toContain(`web ${ports[0]}`)
    }, 120_000)

    it("list prints table, json, csv and tsv; list-projects counts per project", async () => {
      const table = Keel.ok(await keel(["port", "list", "--show-full-paths"]))
      expect(table.split("\n")[0]).toMatch(/^PORT\s+TAG\s+PATH/)
      expect(table).toContain(project)
      const listed = records(Keel.json(await keel(["port", "list", "--format", "json"])).reservations)
      expect(listed.length).toBe(3)
      const csv = Keel.ok(await keel(["port", "list", "--format", "csv"]))
        .trim()
        .split("\n")
      expect(csv[0]).toBe("port,tag,path,project,task,last_used,expires")
      expect(csv.length).toBe(4)
      expect(csv.some((line) => line.includes(`"${project.replaceAll('"', '""')}"`))).toBe(true)
      const tsv = Keel.ok(await keel(["port", "list", "--format", "tsv"]))
        .split("\n")
        .filter((line) => line !== "")
      expect(tsv.every((line) => line.split("\t").length === 7)).toBe(true)
      const projects = records(Keel.json(await keel(["port", "list-projects", "--json"])).projects)
      expect(projects).toEqual([{ project: "app", reservations: 3 }])
    }, 120_000)

    it("exclude and compact-exclusions edit trop.yaml; scan --autoexclude adds an occupied port", async () => {
      Keel.ok(await keel(["port", "exclude", String(max - 3), `${max - 5}..${max - 4}`]))
      const compacted = Keel.json(await keel(["port", "compact-exclusions", "--json"]))
      expect(compacted.excluded).toEqual([{ min: max - 5, max: max - 3 }])
      const server = net.createServer()
      await new Promise<void>((resolve) => server.listen({ port: max - 10, host: "127.0.0.1" }, resolve))
      try {
        const scanned = Keel.json(
          await keel(["port", "scan", "--range", `${max - 12}-${max - 8}`, "--autoexclude", "--json"])
        )
        expect(records(scanned.occupied).map((entry) => entry.port)).toContain(max - 10)
      } finally {
        await new Promise<void>((resolve) => server.close(() => resolve()))
      }
      const text = readFileSync(join(project, "trop.yaml"), "utf8")
      expect(text).toContain(String(max - 10))
      expect(text).toContain("web: { env: WEB_PORT }")
    }, 120_000)

    it("assert-reservation, assert-port, port-info and the data directory", async () => {
      const web = Number(Keel.ok(await keel(["port", "assert-reservation", "--tag", "web"])).trim())
      Keel.failure(await keel(["port", "assert-reservation", "--tag", "nope"]), 1)
      Keel.ok(await keel(["port", "assert-reservation", "--tag", "nope", "--not"]))
      Keel.ok(await keel(["port", "assert-port", String(web)]))
      Keel.failure(await keel(["port", "assert-port", String(web), "--not"]), 1)
      const info = Keel.json(await keel(["port", "port-info", String(web), "--include-occupancy", "--json"]))
      expect(info).toMatchObject({ port: web, occupied: false })
      if (kind === "sqlite") {
        Keel.ok(await keel(["port", "assert-data-dir"]))
        expect(Keel.ok(await keel(["port", "show-data-dir"])).trim()).toBe(root)
      } else Keel.ok(await keel(["port", "assert-data-dir", "--not"]))
    }, 120_000)

    it("prune removes reservations of a deleted directory; expire --days only reports in a dry run", async () => {
      const gone = join(root, "gone")
      mkdirSync(gone)
      Keel.ok(await keel(["port", "reserve", "--path", gone, "--tag", "x", "--allow-unrelated"]))
      rmSync(gone, { recursive: true })
      const dry = Keel.json(await keel(["port", "expire", "--days", "1", "--dry-run", "--json"]))
      expect(dry.dryRun).toBe(true)
      const pruned = records(Keel.json(await keel(["port", "prune", "--json"])).removed)
      expect(pruned.map((entry) => entry.reason)).toEqual(["missing-path"])
      Keel.failure(await keel(["port", "expire", "--days", "0"]), 2)
    }, 120_000)

    it("reserve honours --dry-run and change control; migrate moves a project in one step", async () => {
      const dry = Keel.json(await keel(["port", "reserve", "--tag", "extra", "--dry-run", "--json"]))
      expect(dry.outcome).toBe("created")
      Keel.failure(await keel(["port", "assert-reservation", "--tag", "extra"]), 1)
      Keel.failure(await keel(["port", "reserve", "--tag", "web", "--project", "other"]), 1)
      Keel.ok(await keel(["port", "reserve", "--tag", "web", "--project", "other", "--allow-project-change"]))
      const before = records(Keel.json(await keel(["port", "list", "--json"])).reservations)
      const target = join(root, "moved")
      mkdirSync(target)
      Keel.ok(await keel(["port", "migrate", "--from", project, "--to", target]))
      const after = records(Keel.json(await keel(["port", "list", "--json"])).reservations)
      expect(after.map((r) => [r.tag, r.port]).sort()).toEqual(before.map((r) => [r.tag, r.port]).sort())
      expect(after.every((r) => r.path === target)).toBe(true)
    }, 120_000)

    it("10 racing migrates move each reservation once: none lost, no port doubled", async () => {
      const from = join(root, "race-from")
      mkdirSync(join(from, "a"), { recursive: true })
      for (const tag of ["s1", "s2", "s3"]) {
        Keel.ok(await keel(["port", "reserve", "--path", join(from, "a"), "--tag", tag, "--allow-unrelated"]))
      }
      const before = records(Keel.json(await keel(["port", "list", "--json"])).reservations)
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, index) =>
          keel([
            "port",
            "migrate",
            "--from",
            from,
            "--to",
            join(root, `race-to-${index}`),
            "--recursive",
            "--json"
          ])
        )
      )
      const moved = results.map((result) => records(Keel.json(result).moved).length)
      expect(moved.filter((count) => count > 0)).toEqual([3])
      const after = records(Keel.json(await keel(["port", "list", "--json"])).reservations)
      expect(after.length).toBe(before.length)
      expect(new Set(after.map((r) => r.port)).size).toBe(after.length)
      expect(after.map((r) => r.port).sort()).toEqual(before.map((r) => r.port).sort())
    }, 300_000)

    it("10 processes racing an exhausted range prune dead reservations inside their transactions", async () => {
      const low = max + 20
      const range = `${low}-${low + 7}`
      const dead = join(root, "dead")
      mkdirSync(dead)
      const tags = ["d1", "d2", "d3", "d4", "d5", "d6"]
      Keel.ok(
        await keel(["port", "reserve-group", ...tags, "--path", dead, "--range", range, "--allow-unrelated"])
      )
      const live = join(root, "live")
      mkdirSync(live)
      Keel.ok(
        await keel([
          "port",
          "reserve-group",
          "l1",
          "l2",
          "--path",
          live,
          "--range",
          range,
          "--allow-unrelated"
        ])
      )
      rmSync(dead, { recursive: true })
      const dirs = Array.from({ length: 10 }, (_, index) => join(root, `claimant-${index}`))
      for (const dir of dirs) mkdirSync(dir)
      const results = await Promise.all(
        dirs.map((dir) => keel(["port", "reserve", "--path", dir, "--range", range, "--allow-unrelated"]))
      )
      const won = results.filter((result) => result.code === 0).map((result) => Number(result.stdout.trim()))
      const lost = results.filter((result) => result.code !== 0)
      expect(won.length).toBe(6)
      expect(new Set(won).size).toBe(6)
      for (const result of lost) expect(result.stderr).toContain("no free port")
      const inRange = records(Keel.json(await keel(["port", "list", "--json"])).reservations).filter(
        (r) => Number(r.port) >= low && Number(r.port) <= low + 7
      )
      expect(inRange.length).toBe(8)
      expect(new Set(inRange.map((r) => r.port)).size).toBe(8)
      expect(inRange.filter((r) => r.path === live).length).toBe(2)
    }, 300_000)
  })
}
