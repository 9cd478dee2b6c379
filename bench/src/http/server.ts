/**
 * The HTTP server under test as a child process: `keel serve` (the CLI bundle, rebuilt from the
 * workspace's sources so it never lags them), or any other node entry point of the server, on a
 * DSN, on a free port of 127.0.0.1. Its log goes to a file in its directory, as a service's log
 * goes to a file or journald: the server writes every line itself, and nobody reading a pipe slows
 * it down or competes with it for the CPU.
 */
import { spawn, spawnSync } from "node:child_process"
import { closeSync, existsSync, openSync, readFileSync } from "node:fs"
import * as Net from "node:net"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const cli = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "apps", "cli")

/** `apps/cli/bin/keel.cjs` after building the CLI bundle from the current sources. */
export const keelBin = (): string => {
  const built = spawnSync(process.execPath, [join(cli, "scripts", "build.mjs")], {
    cwd: cli,
    encoding: "utf8"
  })
  if (built.status !== 0) throw new Error(`building the CLI failed: ${built.stderr.trim().slice(0, 400)}`)
  const bin = join(cli, "bin", "keel.cjs")
  if (!existsSync(bin)) throw new Error("apps/cli/bin/keel.cjs does not exist")
  return bin
}

/** A running server. */
export interface Server {
  readonly url: string
  readonly pid: number
  /** Every line it logged so far. */
  readonly log: () => string
  /** Its peak resident set size so far (`VmHWM` of /proc/<pid>/status), in MiB. */
  readonly peakRssMiB: () => number
  /** CPU time it used so far, user + system (/proc/<pid>/stat, 10 ms ticks), in seconds. */
  readonly cpuSeconds: () => number
  /** SIGTERM, then waits for it to exit; rejects unless it exits 0 within 30 s (then SIGKILL). */
  readonly stop: () => Promise<void>
}

/** What to start. */
export interface Options {
  /** The node arguments: flags, the entry point and its arguments (`[keelBin(), "serve"]`). */
  readonly args: ReadonlyArray<string>
  readonly dsn: string
  /** A directory of its own: its log file, and its XDG_DATA_HOME. */
  readonly dir: string
  /** More environment (e.g. `KEEL_LOG_LEVEL`); every other `KEEL_*` of this process is left out. */
  readonly env?: Readonly<Record<string, string>>
}

/** The peak RSS of process `pid`, in MiB (NaN when /proc cannot tell). */
const vmHwmMiB = (pid: number): number => {
  try {
    const kib = /^VmHWM:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]
    return kib === undefined ? Number.NaN : Math.round((Number(kib) / 1024) * 10) / 10
  } catch {
    return Number.NaN
  }
}

/** User + system CPU seconds of process `pid` (NaN when /proc cannot tell). */
const cpuSecondsOf = (pid: number): number => {
  try {
    // The fields after the command name (which may hold spaces) and its closing parenthesis.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here (0-based: 11, 12).
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return Number.NaN
  }
}

/** A port nobody listens on now (the kernel's pick, released at once for the server to take). */
const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const probe = Net.createServer()
    probe.once("error", reject)
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address()
      probe.close(() =>
        typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port"))
      )
    })
  })

/** True when `GET /health` answers 200. */
const healthy = async (url: string): Promise<boolean> => {
  try {
    const response = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) })
    await response.arrayBuffer()
    return response.status === 200
  } catch {
    return false
  }
}

/**
 * Starts the server and resolves once `GET /health` answers 200 (within 60 s). The port is chosen
 * here, not with `KEEL_PORT=0`: below INFO the server does not log where it listens.
 */
export const start = async (options: Options): Promise<Server> => {
  const logFile = join(options.dir, "server.log")
  const out = openSync(logFile, "a")
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.startsWith("KEEL_"))
  )
  const port = await freePort()
  const child = spawn(process.execPath, [...options.args], {
    cwd: options.dir,
    stdio: ["ignore", out, "pipe"],
    env: {
      ...inherited,
      KEEL_DB: options.dsn,
      KEEL_HOST: "127.0.0.1",
      KEEL_PORT: String(port),
      XDG_DATA_HOME: options.dir,
      ...options.env
    }
  })
  closeSync(out)
  let stderr = ""
  child.stderr?.setEncoding("utf8")
  child.stderr?.on("data", (chunk: string) => {
    stderr += chunk
  })
  const exited = new Promise<number | string>((resolve) => {
    child.on("exit", (code, signal) => resolve(code ?? signal ?? "unknown"))
  })
  const log = () => readFileSync(logFile, "utf8")
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 60_000
  while (!(await healthy(url))) {
    const ended = await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 25, undefined))])
    if (ended !== undefined || Date.now() > deadline) {
      child.kill("SIGKILL")
      throw new Error(`the server did not start (${ended ?? "timeout"}):\n${log()}\n${stderr}`)
    }
  }
  const pid = child.pid ?? Number.NaN
  return {
    url,
    pid,
    log,
    peakRssMiB: () => vmHwmMiB(pid),
    cpuSeconds: () => cpuSecondsOf(pid),
    stop: async () => {
      child.kill("SIGTERM")
      // The grace period for requests in flight is 10 s; a server still running long after is stuck.
      let timer: NodeJS.Timeout | undefined
      const stuck = new Promise((resolve) => {
        timer = setTimeout(resolve, 30_000, "stuck")
      })
      const code = await Promise.race([exited, stuck])
      clearTimeout(timer)
      if (code === "stuck") {
        child.kill("SIGKILL")
        throw new Error(`the server did not exit within 30 s of SIGTERM:\n${stderr}`)
      }
      if (code !== 0) throw new Error(`the server exited with ${code}:\n${stderr}`)
    }
  }
}
