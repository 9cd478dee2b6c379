/**
 * Every route of the API, read from its definition (`KeelApi`), never from a hand-written list:
 * method, path template and the Schemas of its path parameters, query string and body. A route
 * added to `Api.ts` is fuzzed and auth-checked without touching the tests.
 */
import type { Option, Schema } from "effect"
import { KeelApi } from "../../src/Api.js"

/** One endpoint of the API. */
export interface Route {
  /** `group.endpoint`, e.g. `queues.read`. */
  readonly id: string
  readonly method: string
  /** The path template, parameters as `:name`. */
  readonly path: string
  /** The names of the path parameters, in order. */
  readonly params: ReadonlyArray<string>
  readonly pathSchema: Option.Option<Schema.Schema.AnyNoContext>
  readonly urlParamsSchema: Option.Option<Schema.Schema.AnyNoContext>
  readonly payloadSchema: Option.Option<Schema.Schema.AnyNoContext>
}

/** Every route of `KeelApi`, group by group. */
export const routes: ReadonlyArray<Route> = Object.values(KeelApi.groups).flatMap((group) =>
  Object.values(group.endpoints).map(
    (endpoint): Route => ({
      id: `${group.identifier}.${endpoint.name}`,
      method: endpoint.method,
      path: endpoint.path,
      params: [...endpoint.path.matchAll(/:(\w+)/g)].flatMap((match) =>
        match[1] === undefined ? [] : [match[1]]
      ),
      pathSchema: endpoint.pathSchema,
      urlParamsSchema: endpoint.urlParamsSchema,
      payloadSchema: endpoint.payloadSchema
    })
  )
)

/** `path` with each `:param` replaced by its value from `values` (already encoded). */
export const fill = (path: string, values: Readonly<Record<string, string>>): string =>
  path.replace(/:(\w+)/g, (whole, name: string) => values[name] ?? whole)
