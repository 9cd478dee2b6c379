/**
 * Builds the dashboard into dist/: one minified ES module with a content hash in its name, and
 * index.html that loads it, with the stylesheet inline (the server serves dist/ at /ui).
 * Everything is bundled: the page loads nothing from another origin and works offline.
 *
 * The API definition comes from @keel/server's route modules, which import the packages' Schemas;
 * those packages also hold node-only code (drivers, node: modules) that the page never runs. Node
 * modules and drivers resolve to an empty module, and the workspace's own modules are marked free
 * of side effects, so esbuild keeps only what the client uses.
 *
 * Safe to run concurrently (test files build in parallel): files are written to a temporary name
 * and renamed into place, and identical sources produce identical files. Prints each file's size
 * and the gzipped total.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { builtinModules } from "node:module"
import { dirname, join, relative } from "node:path"
import { fileURLToPath } from "node:url"
import { gzipSync } from "node:zlib"
import * as esbuild from "esbuild"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const outdir = process.env.KEEL_UI_OUT ?? join(root, "dist")

const escapeName = (name) => name.replaceAll("/", "\\/").replaceAll(".", "\\.")
const nodeOnly = new RegExp(
  `^(node:.*|${builtinModules.map(escapeName).join("|")})(\\/.*)?$|` +
    "^(pg|pg-.*|pgpass|better-sqlite3|@electric-sql\\/pglite|@libsql\\/.*|libsql|@tursodatabase\\/.*|" +
    "@effect\\/platform-node.*|@effect\\/sql-.*|@opentelemetry\\/.*|@effect\\/opentelemetry)(\\/.*)?$"
)

/** Node-only imports become an empty module; the workspace's modules are free of side effects. */
const browserOnly = {
  name: "browser-only",
  setup(build) {
    build.onResolve({ filter: nodeOnly }, (args) => ({
      path: args.path,
      namespace: "node-only",
      sideEffects: false
    }))
    build.onLoad({ filter: /.*/, namespace: "node-only" }, () => ({
      contents: "module.exports = {}",
      loader: "js"
    }))
    const workspace = /[\\/](packages|apps[\\/]server)[\\/]/
    build.onResolve({ filter: /^(@keel\/|\.)/ }, async (args) => {
      if (args.pluginData === "resolved") return undefined
      if (!args.path.startsWith("@keel/") && !workspace.test(args.importer)) return undefined
      const resolved = await build.resolve(args.path, {
        kind: args.kind,
        importer: args.importer,
        resolveDir: args.resolveDir,
        pluginData: "resolved"
      })
      if (resolved.errors.length > 0) return { errors: resolved.errors }
      return { ...resolved, sideEffects: resolved.path.includes("/src/") ? false : resolved.sideEffects }
    })
    // `import { Effect } from "effect"` reaches Effect through the package's `export * as Effect`
    // barrel, and esbuild then keeps the whole namespace object (every export of the module, and
    // what those reference). Each such import is rewritten to the module itself
    // (`import * as Effect from "effect/Effect"`), which esbuild shakes export by export.
    const barrels = new Map()
    const barrelOf = async (name, resolveDir) => {
      if (!barrels.has(name)) {
        barrels.set(
          name,
          (async () => {
            const resolved = await build.resolve(name, {
              kind: "import-statement",
              resolveDir,
              pluginData: "resolved"
            })
            if (resolved.errors.length > 0) return undefined
            const members = new Map()
            const text = readFileSync(resolved.path, "utf8")
            for (const match of text.matchAll(/export \* as (\w+) from "\.\/([\w/]+)\.js"/g)) {
              members.set(match[1], { namespace: true, module: `${name}/${match[2]}` })
            }
            for (const match of text.matchAll(/export \{([^}]*)\} from "\.\/([\w/]+)\.js"/g)) {
              for (const member of match[1]
                .split(",")
                .map((part) => part.trim())
                .filter(Boolean)) {
                members.set(member, { namespace: false, module: `${name}/${match[2]}` })
              }
            }
            return members
          })()
        )
      }
      return barrels.get(name)
    }
    const importPattern =
      /^import \{([^}]*)\} from "(effect|@effect\/platform|@effect\/sql|@keel\/(?:sql|queue|cursor|reservation))"/gm
    const rewrite = async (source, resolveDir) => {
      const replacements = []
      for (const match of source.matchAll(importPattern)) {
        const members = await barrelOf(match[2], resolveDir)
        const names = match[1]
          .split(",")
          .map((part) => part.trim())
          .filter((part) => part !== "" && !part.startsWith("type "))
        if (members === undefined || names.some((name) => !members.has(name))) continue
        const lines = names.map((name) => {
          const member = members.get(name)
          return member.namespace
            ? `import * as ${name} from "${member.module}"`
            : `import { ${name} } from "${member.module}"`
        })
        replacements.push([match[0], lines.join("; ")])
      }
      let result = source
      for (const [from, to] of replacements) result = result.replace(from, to)
      return result
    }
    // Top-level definitions of the workspace's modules (`const x = make(…)`, `class E extends
    // Schema.TaggedError<E>()(…)`) are calls esbuild cannot prove free of side effects: marked pure,
    // the unused ones are dropped with what they reference.
    build.onLoad(
      { filter: /[\\/](packages[\\/][^\\/]+|apps[\\/](server|ui))[\\/]src[\\/].*\.tsx?$/ },
      async (args) => {
        const source = readFileSync(args.path, "utf8")
        const pure = args.path.includes(`${join("apps", "ui")}`)
          ? source
          : source
              .replace(
                /^((?:export )?const [\w$]+(?:\s*:[^=\n]+)?\s*=\s*)(?=[A-Za-z_$][\w$.]*(?:<[^\n]*?>)?\()/gm,
                "$1/* @__PURE__ */ "
              )
              .replace(
                /^((?:export )?class [\w$]+(?:<[^\n]*?>)? extends )(?=[A-Za-z_$][\w$.]*(?:<[^\n]*?>)?\()/gm,
                "$1/* @__PURE__ */ "
              )
        const contents = await rewrite(pure, dirname(args.path))
        return { contents, loader: args.path.endsWith(".tsx") ? "tsx" : "ts" }
      }
    )
  }
}

const result = await esbuild.build({
  absWorkingDir: root,
  entryPoints: { app: "src/main.tsx" },
  outdir,
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  minify: process.env.KEEL_UI_MINIFY !== "0",
  legalComments: "none",
  entryNames: "[name]-[hash]",
  jsx: "automatic",
  jsxImportSource: "preact",
  plugins: [browserOnly],
  logLevel: "warning",
  write: false,
  metafile: true
})

const names = result.outputFiles.map((file) => relative(outdir, file.path))
const script = names.find((name) => name.endsWith(".js"))
// The stylesheet goes inline: the first paint then waits for index.html alone.
const stylesheet = result.outputFiles.find((file) => file.path.endsWith(".css"))
const style =
  stylesheet === undefined ? "" : Buffer.from(stylesheet.contents).toString("utf8").replaceAll("</", "<\\/")
const index = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Keel</title>
<link rel="icon" href="data:,">
<style>${style}</style>
<script type="module" src="/ui/${script}"></script>
</head>
<body>
<div id="app"><p class="boot">Loading…</p></div>
</body>
</html>
`

mkdirSync(outdir, { recursive: true })
const files = [
  ...result.outputFiles.filter((file) => file !== stylesheet).map((file) => [file.path, file.contents]),
  [join(outdir, "index.html"), Buffer.from(index)]
]
for (const [path, contents] of files) {
  const temporary = `${path}.${process.pid}.tmp`
  writeFileSync(temporary, contents)
  renameSync(temporary, path)
}
const written = new Set(files.map(([path]) => path))
if (existsSync(outdir)) {
  for (const name of readdirSync(outdir)) {
    const path = join(outdir, name)
    if (/\.(js|css)$/.test(name) && !written.has(path)) rmSync(path, { force: true })
  }
}
let gzipped = 0
for (const [path, contents] of files) {
  const size = gzipSync(contents, { level: 9 }).byteLength
  gzipped += size
  console.log(
    `${relative(root, path)}: ${(contents.byteLength / 1024).toFixed(1)} KiB, ${(size / 1024).toFixed(1)} KiB gzipped`
  )
}
if (process.env.KEEL_UI_META) writeFileSync(process.env.KEEL_UI_META, JSON.stringify(result.metafile))
console.log(`dashboard built: ${(gzipped / 1024).toFixed(1)} KiB gzipped in all`)
