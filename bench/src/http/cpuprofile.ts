/**
 * Where a V8 CPU profile (`node --cpu-prof`, a `.cpuprofile` file) spends its time: self time per
 * function, per file and per package, and inclusive time under named groups of frames (a frame
 * anywhere on the stack counts the sample once). Frames of an esbuild bundle (a script under a
 * `.bundle/` directory, as `@keel/sql/test/Bundle` writes them) are mapped back to their source
 * module through the `// path/to/module.ts` comments esbuild writes before each module.
 * Frames without a script (V8 builtins, native bindings such as better-sqlite3's `run`) are listed
 * under their own name and counted in the package of the frame that called them.
 *
 * `tsx src/http/cpuprofile.ts FILE.cpuprofile [BUNDLE_COPY_DIR]` prints the tables (the directory
 * holds a copy of the bundles' files by their path below `.bundle/`, when the bundles are gone).
 */
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

interface CallFrame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
  readonly columnNumber: number
}

interface ProfileNode {
  readonly id: number
  readonly callFrame: CallFrame
  readonly children?: ReadonlyArray<number>
}

/** The `.cpuprofile` format. */
export interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly startTime: number
  readonly endTime: number
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

/** One frame, resolved: the package (or `node:…`, or a V8 category) and the file inside it. */
export interface Frame {
  readonly name: string
  readonly pkg: string
  readonly file: string
}

/** A named group of frames whose inclusive time is reported. */
export interface Group {
  readonly name: string
  readonly matches: (frame: Frame) => boolean
}

/** The analysis of the samples of one window. */
export interface Analysis {
  /** Sampled time in ms, idle excluded. */
  readonly busyMs: number
  readonly idleMs: number
  /** Self time in the areas of `areaOf` (sums to the busy time). */
  readonly byArea: ReadonlyArray<readonly [string, number]>
  readonly byFunction: ReadonlyArray<readonly [string, number]>
  readonly byFile: ReadonlyArray<readonly [string, number]>
  readonly byPackage: ReadonlyArray<readonly [string, number]>
  readonly byGroup: ReadonlyArray<readonly [string, number]>
}

const special = new Set(["(idle)", "(program)", "(garbage collector)", "(root)"])

/** Module of each line of a bundle, from esbuild's `// path` comments (0-based line index). */
const bundleModules = (file: string): ReadonlyArray<string> => {
  const modules: Array<string> = []
  let current = "(bundle)"
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const marker = /^\/\/ (\S+\.(?:ts|mts|js|mjs|cjs|json))$/.exec(line)?.[1]
    if (marker !== undefined) current = marker
    modules.push(current)
  }
  return modules
}

/** `@keel/queue` for `../../packages/queue/src/x.ts`, `@keel/server` for `apps/server/src/…`. */
const workspacePackage = (module: string): string => {
  const pkg = /(?:^|\/)packages\/([^/]+)\//.exec(module)?.[1]
  if (pkg !== undefined) return `@keel/${pkg}`
  const app = /(?:^|\/)apps\/([^/]+)\//.exec(module)?.[1]
  if (app !== undefined) return `@keel/${app}`
  const dependency = /.*node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(module)?.[1]
  return dependency ?? module
}

/** The path of a bundle's file below its `.bundle/` directory, or undefined for other scripts. */
export const bundlePath = (path: string): string | undefined => {
  const at = path.lastIndexOf("/.bundle/")
  return at === -1 ? undefined : path.slice(at + "/.bundle/".length)
}

/** Resolves frames; bundle files are read where they ran, else from `bundleCopy`. */
const resolver = (bundleCopy: string | undefined) => {
  const modules = new Map<string, ReadonlyArray<string> | undefined>()
  const modulesOf = (path: string, below: string): ReadonlyArray<string> | undefined => {
    if (!modules.has(path)) {
      const file = existsSync(path) ? path : bundleCopy === undefined ? undefined : join(bundleCopy, below)
      modules.set(path, file !== undefined && existsSync(file) ? bundleModules(file) : undefined)
    }
    return modules.get(path)
  }
  return (frame: CallFrame): Frame | undefined => {
    const name = frame.functionName || "(anonymous)"
    if (frame.url === "") return special.has(name) ? { name, pkg: name, file: name } : undefined
    if (frame.url.startsWith("node:")) {
      const file = frame.url.slice("node:".length)
      return { name, pkg: `node:${file.replace(/^internal\//, "").split("/")[0]}`, file: frame.url }
    }
    const path = frame.url.startsWith("file://") ? fileURLToPath(frame.url) : frame.url
    const below = bundlePath(path)
    const lines = below === undefined ? undefined : modulesOf(path, below)
    if (below !== undefined) {
      const module = lines?.[frame.lineNumber] ?? `(bundle) ${below}`
      return { name, pkg: workspacePackage(module), file: module.replace(/^(\.\.\/)+/, "") }
    }
    const dependency = /.*node_modules\/((?:@[^/]+\/)?[^/]+)\/(.*)$/.exec(path)
    if (dependency !== null) {
      return { name, pkg: dependency[1] ?? path, file: `${dependency[1]}/${dependency[2]}` }
    }
    return { name, pkg: path, file: path }
  }
}

/** `file:line`; a bundled module's line is the bundle's (its source has no map here). */
const where = (frame: Frame, call: CallFrame): string =>
  bundlePath(call.url) === undefined
    ? `${frame.file}:${call.lineNumber + 1}`
    : `${frame.file} (bundle line ${call.lineNumber + 1})`

const sorted = (totals: Map<string, number>): ReadonlyArray<readonly [string, number]> =>
  [...totals.entries()].sort((a, b) => b[1] - a[1])

const add = (totals: Map<string, number>, key: string, ms: number) =>
  totals.set(key, (totals.get(key) ?? 0) + ms)

/**
 * Analyses the samples of `profile` taken from `from` to `to` (µs, the profile's clock; the whole
 * profile by default). `bundleCopy`: where copies of its bundle files are, if they are gone.
 */
export const analyse = (
  profile: Profile,
  options: {
    readonly bundleCopy?: string
    readonly groups?: ReadonlyArray<Group>
    readonly from?: number
    readonly to?: number
  } = {}
): Analysis => {
  const resolve = resolver(options.bundleCopy)
  const byId = new Map(profile.nodes.map((node) => [node.id, node] as const))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  // Each node's own frame, the frame its time is counted under (the nearest resolved one), and
  // the groups on its stack.
  const frames = new Map<number, Frame | undefined>()
  for (const node of profile.nodes) frames.set(node.id, resolve(node.callFrame))
  const owner = (id: number): Frame => {
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = frames.get(at)
      if (frame !== undefined) return frame
    }
    return { name: "(unknown)", pkg: "(unknown)", file: "(unknown)" }
  }
  const groups = options.groups ?? []
  const groupsOf = new Map<number, ReadonlyArray<string>>()
  const stackGroups = (id: number): ReadonlyArray<string> => {
    const known = groupsOf.get(id)
    if (known !== undefined) return known
    const up = parent.get(id)
    const inherited = up === undefined ? [] : stackGroups(up)
    const frame = frames.get(id)
    const own = frame === undefined ? [] : groups.filter((g) => g.matches(frame)).map((g) => g.name)
    const all = [...new Set([...inherited, ...own])]
    groupsOf.set(id, all)
    return all
  }

  const byArea = new Map<string, number>()
  const byFunction = new Map<string, number>()
  const byFile = new Map<string, number>()
  const byPackage = new Map<string, number>()
  const byGroup = new Map<string, number>()
  let busyMs = 0
  let idleMs = 0
  let at = profile.startTime
  const from = options.from ?? Number.NEGATIVE_INFINITY
  const to = options.to ?? Number.POSITIVE_INFINITY
  for (const [index, id] of profile.samples.entries()) {
    at += profile.timeDeltas[index] ?? 0
    // A sample's time is the gap to the next one.
    const ms = ((profile.timeDeltas[index + 1] ?? 0) || 0) / 1000
    if (at < from || at > to) continue
    const node = byId.get(id)
    if (node === undefined) continue
    const name = node.callFrame.functionName || "(anonymous)"
    if (name === "(idle)") {
      idleMs += ms
      continue
    }
    busyMs += ms
    const counted = owner(id)
    const own = frames.get(id)
    const label = own === undefined ? `${name} (native, from ${counted.name} in ${counted.file})` : name
    add(byFunction, `${label}  ${own === undefined ? "" : where(own, node.callFrame)}`, ms)
    add(byArea, areaOf(counted, own === undefined ? name : undefined), ms)
    add(byFile, counted.file, ms)
    add(byPackage, counted.pkg, ms)
    for (const group of stackGroups(id)) add(byGroup, group, ms)
  }
  return {
    busyMs,
    idleMs,
    byArea: sorted(byArea),
    byFunction: sorted(byFunction),
    byFile: sorted(byFile),
    byPackage: sorted(byPackage),
    byGroup: sorted(byGroup)
  }
}

/**
 * The area of a frame's self time in an HTTP server (`native`: the name of a script-less frame
 * counted under `frame`, its caller).
 */
export const areaOf = (frame: Frame, native?: string): string => {
  const { pkg, file, name } = frame
  if (pkg === "(garbage collector)") return "V8 garbage collector"
  if (pkg === "(program)") return "V8 (program: compiler, IC misses, …)"
  if (native === "consoleCall" || /^node:(console|fs)$/.test(pkg) || file.includes("sync_write_stream"))
    return "log output: console.log, fs.writeSync"
  if (/^node:(_http_|http$)/.test(pkg)) return "node http (parser, server, outgoing)"
  if (/^node:(stream_base_commons|net|streams|buffer)$/.test(pkg)) return "node sockets, streams, buffers"
  if (pkg === "node:url") return "node URL parsing"
  if (pkg.startsWith("node:")) return "node other (events, timers, nextTick, async hooks, …)"
  if (pkg === "effect") {
    if (/internal\/logger\.js$/.test(file)) return "effect logger (logfmt formatting)"
    if (/internal\/metric/.test(file)) return "effect metrics"
    if (/\/(Schema|ParseResult|SchemaAST)\.js$/.test(file)) return "effect Schema / ParseResult"
    return "effect runtime (fibers, core, context, FiberRefs)"
  }
  if (pkg.startsWith("@effect/platform") || pkg === "find-my-way-ts" || pkg === "multipasta")
    return "@effect/platform (server, router, HttpApi)"
  if (pkg.startsWith("@effect/sql")) return "@effect/sql"
  if (pkg === "better-sqlite3" || (pkg === "@keel/sql" && name === "runSync"))
    return "SQLite (better-sqlite3 statement calls)"
  return pkg
}

/** Frames in a file of `pkg` whose path (inside the package) matches `file`. */
const inFile =
  (pkg: string, file: RegExp) =>
  (frame: Frame): boolean =>
    frame.pkg === pkg && file.test(frame.file)

/**
 * Inclusive groups that say what one request's subsystems cost in Keel's server. Only code that
 * runs synchronously under its own frames is counted: an Effect program's steps run from the
 * fiber's run loop, so the runtime's share of a group's effects is not in it.
 */
export const serverGroups: ReadonlyArray<Group> = [
  {
    name: "logging: FiberRuntime.log → logfmt → console.log → log file",
    matches: (frame) =>
      inFile("effect", /internal\/logger\.js$/)(frame) ||
      (inFile("effect", /internal\/fiberRuntime\.js$/)(frame) && frame.name === "log") ||
      frame.pkg === "node:console"
  },
  { name: "metrics: effect Metric", matches: inFile("effect", /internal\/metric/) },
  {
    name: "Schema decode/encode: effect Schema, ParseResult",
    matches: inFile("effect", /\/(Schema|ParseResult|SchemaAST)\.js$/)
  },
  { name: "routing: find-my-way-ts", matches: (frame) => frame.pkg === "find-my-way-ts" },
  {
    name: "@keel/server code (middleware, handlers, body limit)",
    matches: (frame) => frame.pkg === "@keel/server"
  },
  { name: "@keel/queue code", matches: (frame) => frame.pkg === "@keel/queue" },
  { name: "@keel/sql code (transactions, statements)", matches: (frame) => frame.pkg === "@keel/sql" },
  {
    name: "SQLite statements (better-sqlite3 calls)",
    matches: (frame) =>
      frame.pkg === "better-sqlite3" || (frame.pkg === "@keel/sql" && frame.name === "runSync")
  },
  { name: "pg driver", matches: (frame) => frame.pkg === "pg" || frame.pkg === "pg-protocol" }
]

const table = (title: string, rows: ReadonlyArray<readonly [string, number]>, busyMs: number, top = 25) => {
  console.log(`\n### ${title}\n`)
  for (const [key, ms] of rows.slice(0, top)) {
    console.log(`${((100 * ms) / busyMs).toFixed(1).padStart(5)}%  ${ms.toFixed(0).padStart(7)} ms  ${key}`)
  }
}

/** Prints an analysis: the busy time, then each table. */
export const print = (analysis: Analysis, top = 25): void => {
  const total = analysis.busyMs + analysis.idleMs
  console.log(
    `busy ${analysis.busyMs.toFixed(0)} ms of ${total.toFixed(0)} ms sampled (${((100 * analysis.busyMs) / total).toFixed(1)}% of one core)`
  )
  table("self, by area", analysis.byArea, analysis.busyMs)
  table(
    "inclusive, by group (a sample counts once per group on its stack)",
    analysis.byGroup,
    analysis.busyMs
  )
  table("self, by package", analysis.byPackage, analysis.busyMs, top)
  table("self, by file", analysis.byFile, analysis.busyMs, top)
  table("self, by function", analysis.byFunction, analysis.busyMs, top)
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [file, bundleCopy] = process.argv.slice(2)
  if (file === undefined) {
    console.error("usage: cpuprofile.ts FILE.cpuprofile [BUNDLE_COPY_DIR]")
    process.exit(2)
  }
  const profile = JSON.parse(readFileSync(file, "utf8")) as Profile
  print(analyse(profile, { groups: serverGroups, ...(bundleCopy === undefined ? {} : { bundleCopy }) }))
}
