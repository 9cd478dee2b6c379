/**
 * The dashboard's static files (built by `@keel/ui` into `apps/ui/dist`) served at `/ui`: read
 * once when the server starts, answered from memory (gzipped when the client accepts it), only the
 * files the build wrote (no path from a request ever reaches the file system). `KEEL_UI_DIR` points
 * at another directory. When no build is found, `/ui` answers 503 with the command that builds it.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs"
import { extname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { gzipSync } from "node:zlib"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"

/** One file of the build, ready to answer. */
export interface Asset {
  readonly contentType: string
  readonly body: Uint8Array
  readonly gzipped: Uint8Array
  /** Hashed file names never change content: cached for a year. `index.html` is always revalidated. */
  readonly immutable: boolean
}

const types: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".json": "application/json"
}

/**
 * Where the build is looked for, first found wins: `apps/ui/dist` seen from this module's source
 * (`pnpm start`, tests) and from the CLI's bundle (`apps/cli/dist/keel.mjs` or a chunk under
 * `apps/cli/dist/chunks/`).
 */
export const defaultDirectories = (): ReadonlyArray<string> =>
  ["../../ui/dist", "../../../ui/dist"].map((relative) => fileURLToPath(new URL(relative, import.meta.url)))

/** The files of a build directory by name, or none when it holds no `index.html`. */
export const load = (directory: string): Option.Option<ReadonlyMap<string, Asset>> => {
  if (!existsSync(join(directory, "index.html"))) return Option.none()
  const assets = new Map<string, Asset>()
  for (const name of readdirSync(directory)) {
    const path = join(directory, name)
    const type = types[extname(name)]
    if (type === undefined || !statSync(path).isFile()) continue
    const body = readFileSync(path)
    assets.set(name, { contentType: type, body, gzipped: gzipSync(body), immutable: name !== "index.html" })
  }
  return Option.some(assets)
}

/** Security headers of every dashboard answer: nothing but Keel's own origin is loaded or contacted. */
export const securityHeaders: Readonly<Record<string, string>> = {
  "content-security-policy":
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer"
}

const notBuilt = HttpServerResponse.text(
  "<!doctype html><title>Keel</title><p>The dashboard is not built. Run " +
    "<code>npx --yes pnpm@10.34.9 --filter @keel/ui build</code> and reload.</p>",
  { status: 503, contentType: "text/html; charset=utf-8", headers: securityHeaders }
)

/** The answer for one asset, gzipped when the request accepts it. */
export const respond = (
  asset: Asset,
  acceptEncoding: string | undefined
): HttpServerResponse.HttpServerResponse => {
  const gzip = acceptEncoding !== undefined && /\bgzip\b/.test(acceptEncoding)
  return HttpServerResponse.uint8Array(gzip ? asset.gzipped : asset.body, {
    contentType: asset.contentType,
    headers: {
      ...securityHeaders,
      "cache-control": asset.immutable ? "public, max-age=31536000, immutable" : "no-cache",
      vary: "accept-encoding",
      ...(gzip ? { "content-encoding": "gzip" } : {})
    }
  })
}

/** `GET /ui/auth.json`: whether the API needs a token, so the page can ask for it before any request. */
export interface AuthInfo {
  readonly token: boolean
}

/**
 * The `/ui` routes on the API's router: `/ui` and `/ui/` answer `index.html`, `/ui/auth.json` says
 * whether a token is needed (what any refused request would tell), `/ui/NAME` a built file.
 */
export const layer = (auth: AuthInfo) =>
  HttpApiBuilder.Router.use((router) =>
    Effect.gen(function* () {
      const configured = yield* Config.option(Config.string("KEEL_UI_DIR")).pipe(Effect.orDie)
      const directories = Option.match(configured, {
        onNone: defaultDirectories,
        onSome: (directory) => [directory]
      })
      const assets = Option.firstSomeOf(directories.map(load))
      // Said when the page is asked for, not at start: a server without the dashboard is not broken.
      const missing = Effect.as(
        Effect.logWarning("dashboard not built: /ui answers 503").pipe(
          Effect.annotateLogs({ build: "npx --yes pnpm@10.34.9 --filter @keel/ui build" })
        ),
        notBuilt
      )
      const serve = (name: string) =>
        Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
          Option.match(assets, {
            onNone: () => missing,
            onSome: (files) => {
              const asset = files.get(name)
              return Effect.succeed(
                asset === undefined
                  ? HttpServerResponse.empty({ status: 404 })
                  : respond(asset, request.headers["accept-encoding"])
              )
            }
          })
        )
      yield* router.get(
        "/ui/auth.json",
        Effect.succeed(
          HttpServerResponse.unsafeJson(auth, {
            headers: { ...securityHeaders, "cache-control": "no-store" }
          })
        )
      )
      yield* router.get("/ui", serve("index.html"))
      yield* router.get(
        "/ui/:file",
        Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
          serve(new URL(request.url, "http://keel").pathname.slice("/ui/".length))
        )
      )
    })
  )
