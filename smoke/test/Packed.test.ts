/**
 * The published packages as a user gets them, outside the workspace: every `@keel/*` package that
 * is not private is packed with pnpm (its `prepack` builds `dist/`), the libraries are installed
 * with npm into a fresh project in a temp directory (no workspace links, no pnpm), a plain Node ESM
 * program sends and consumes a message with `@keel/queue` on SQLite, a TypeScript file type-checks
 * against the shipped declarations, and the CLI tarball is installed globally into a temp prefix
 * and run as `keel`.
 *
 * Third-party dependencies come from the npm registry (through npm's cache). better-sqlite3 has no
 * prebuilt binary to download here and compiles from source on every install (~90 s each), so the
 * installs run with `--ignore-scripts` and receive the workspace's compiled binding when npm chose
 * the same better-sqlite3 version (else `npm rebuild` compiles it). No Keel package has an install
 * script: nothing of ours is skipped.
 */
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync
} from "node:fs"
import { createRequire } from "node:module"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, layer } from "@effect/vitest"
import { Processes } from "@keel/testkit"
import { Context, Effect, Layer, Schema, type Scope } from "effect"

const workspace = fileURLToPath(new URL("../..", import.meta.url))
const fixtures = fileURLToPath(new URL("../fixtures/app", import.meta.url))

/** The fields of a package.json this test reads. */
const Manifest = Schema.Struct({
  name: Schema.String,
  version: Schema.String,
  private: Schema.optional(Schema.Boolean),
  dependencies: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String }))
})
type Manifest = typeof Manifest.Type

const readJson =
  <A, I>(schema: Schema.Schema<A, I>) =>
  (dir: string): A =>
    Schema.decodeUnknownSync(Schema.parseJson(schema))(readFileSync(join(dir, "package.json"), "utf8"))

const readManifest = readJson(Manifest)

/** A workspace package that is published: under packages/ or apps/, not private. */
interface Published extends Manifest {
  readonly dir: string
  /** The file `pnpm pack` names it (`@keel/sql` 0.1.0 → `keel-sql-0.1.0.tgz`). */
  readonly tarball: string
}

const published: ReadonlyArray<Published> = ["packages", "apps"]
  .flatMap((group) => readdirSync(join(workspace, group)).map((name) => join(workspace, group, name)))
  .filter((dir) => existsSync(join(dir, "package.json")))
  .map((dir) => ({ dir, ...readManifest(dir) }))
  .filter((manifest) => manifest.private !== true)
  .map((manifest) => ({
    ...manifest,
    tarball: `${manifest.name.replace("@", "").replace("/", "-")}-${manifest.version}.tgz`
  }))

const cli = published.find((manifest) => manifest.name === "@keel/cli")
const libraries = published.filter((manifest) => manifest !== cli)

/** The pnpm the workspace pins (`packageManager`), run through npx as the README does. */
const pnpm = readJson(Schema.Struct({ packageManager: Schema.String }))(workspace).packageManager

/**
 * The `PATH` of a fresh shell: without the `node_modules/.bin` folders that pnpm and vitest put in
 * front, so no command resolves into the workspace.
 */
const freshPath = (process.env.PATH ?? "")
  .split(":")
  .filter((dir) => !dir.includes("node_modules") && !dir.startsWith(workspace))
  .join(":")

/**
 * The environment of a fresh shell: none of the pnpm/npm settings of the run that started vitest,
 * no `KEEL_*` variables, no `NODE_OPTIONS`.
 */
const freshEnv = (extra: Readonly<Record<string, string>> = {}): NodeJS.ProcessEnv => {
  const kept = ["HOME", "USER", "LANG", "TMPDIR", "SHELL"]
  return {
    ...Object.fromEntries(
      kept.flatMap((key) => (process.env[key] === undefined ? [] : [[key, process.env[key]]]))
    ),
    PATH: freshPath,
    ...extra
  }
}

const run = (
  file: string,
  args: ReadonlyArray<string>,
  cwd: string,
  env: NodeJS.ProcessEnv = freshEnv()
): Effect.Effect<string, Error> => Processes.exec(file, args, { cwd, env, timeoutMs: 600_000 })

const npm = (args: ReadonlyArray<string>, cwd: string): Effect.Effect<string, Error> =>
  run("npm", [...args, "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"], cwd)

const workspaceSqlite = dirname(
  createRequire(join(workspace, "packages", "sql", "package.json")).resolve("better-sqlite3/package.json")
)
const binding = join("build", "Release", "better_sqlite3.node")

/**
 * Gives the better-sqlite3 that npm installed under `root` (a project, or an installed package) its
 * native binding: copied from the first of `donors` (better-sqlite3 folders) of the same version,
 * else compiled by `npm rebuild` (minutes).
 */
const provideBinding = (root: string, donors: ReadonlyArray<string>): Effect.Effect<void, Error> => {
  const installed = join(root, "node_modules", "better-sqlite3")
  const version = readManifest(installed).version
  const donor = donors.find((dir) => existsSync(join(dir, binding)) && readManifest(dir).version === version)
  if (donor === undefined) return Effect.asVoid(npm(["rebuild", "better-sqlite3"], root))
  return Effect.sync(() => {
    mkdirSync(dirname(join(installed, binding)), { recursive: true })
    copyFileSync(join(donor, binding), join(installed, binding))
  })
}

const tempDir: Effect.Effect<string, never, Scope.Scope> = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "keel-smoke-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

/** The packed tarballs, and a user's project (outside the workspace) with every library installed. */
interface Installed {
  readonly dir: string
  readonly tarball: (manifest: Published) => string
  readonly project: string
}

class Packed extends Context.Tag("@keel/smoke/Packed")<Packed, Installed>() {}

const packed: Layer.Layer<Packed, Error> = Layer.scoped(
  Packed,
  Effect.gen(function* () {
    const dir = yield* tempDir
    const tarballs = join(dir, "tarballs")
    const filters = published.flatMap((manifest) => ["--filter", manifest.name])
    yield* run("npx", ["--yes", pnpm, "-r", ...filters, "pack", "--pack-destination", tarballs], workspace)
    const tarball = (manifest: Published) => join(tarballs, manifest.tarball)

    const project = join(dir, "project")
    mkdirSync(project)
    cpSync(fixtures, project, { recursive: true })
    // What a user types: the packages (here their tarballs) and Effect, which their API is written in
    // (the Effect 3 line they depend on: npm's `latest` of effect is Effect 4).
    const effect = readManifest(join(workspace, "packages", "sql")).dependencies?.effect ?? "3"
    yield* npm(["install", "--ignore-scripts", ...libraries.map(tarball), `effect@${effect}`], project)
    yield* provideBinding(project, [workspaceSqlite])
    return { dir, tarball, project }
  })
)

describe("the packed packages, installed with npm outside the workspace", () => {
  layer(packed, { timeout: 900_000 })((it) => {
    it.effect(
      "each library ships built JavaScript, declarations and source maps, and loads in plain Node",
      () =>
        Effect.gen(function* () {
          const { project } = yield* Packed
          for (const library of libraries) {
            const installed = join(project, "node_modules", ...library.name.split("/"))
            expect(readManifest(installed).version).toBe(library.version)
            for (const file of ["index.js", "index.d.ts", "index.js.map", "index.d.ts.map"]) {
              expect(existsSync(join(installed, "dist", file)), `${library.name} dist/${file}`).toBe(true)
            }
            expect(existsSync(join(installed, "test")), `${library.name} ships no tests`).toBe(false)
          }
          const names = libraries.map((library) => library.name)
          const loaded = yield* run(
            process.execPath,
            [
              "--input-type=module",
              "--eval",
              "for (const name of process.argv.slice(1)) console.log(name, Object.keys(await import(name)).length)",
              ...names
            ],
            project
          )
          expect(
            loaded
              .trim()
              .split("\n")
              .map((line) => line.split(" ")[0])
          ).toEqual(names)
        })
    )

    it.effect("a plain Node ESM script sends and consumes a message with @keel/queue on SQLite", () =>
      Effect.gen(function* () {
        const { dir, project } = yield* Packed
        const printed = yield* run(process.execPath, ["send-and-consume.mjs", join(dir, "queue.db")], project)
        expect(JSON.parse(printed)).toEqual({
          id: 1,
          payload: { hello: "from the packed @keel/queue" },
          depth: 0,
          archived: 1
        })
      })
    )

    it.effect("a TypeScript file type-checks against the published declarations", () =>
      Effect.gen(function* () {
        const { project } = yield* Packed
        const tsc = join(workspace, "node_modules", "typescript", "bin", "tsc")
        yield* run(process.execPath, [tsc, "--project", project], project)
      })
    )

    it.effect(
      "the CLI installs globally with npm and runs as `keel` with no build step",
      () =>
        Effect.gen(function* () {
          if (cli === undefined) return expect.fail("@keel/cli is not published")
          const { dir, project, tarball } = yield* Packed
          const prefix = join(dir, "global")
          yield* npm(["install", "--global", "--prefix", prefix, "--ignore-scripts", tarball(cli)], dir)
          const installed = join(prefix, "lib", "node_modules", "@keel", "cli")
          yield* provideBinding(installed, [workspaceSqlite, join(project, "node_modules", "better-sqlite3")])
          // The workspace packages are bundled: nothing but the CLI itself is installed under @keel.
          expect(readdirSync(join(prefix, "lib", "node_modules", "@keel"))).toEqual(["cli"])

          const env = freshEnv({
            PATH: `${join(prefix, "bin")}:${freshPath}`,
            KEEL_DB: `sqlite:${join(dir, "keel.db")}`
          })
          expect((yield* run("keel", ["--version"], dir, env)).trim()).toBe(cli.version)
          expect(yield* run("keel", ["port", "reserve"], dir, env)).toMatch(/^\d+\n$/)
        }),
      300_000
    )
  })
})
