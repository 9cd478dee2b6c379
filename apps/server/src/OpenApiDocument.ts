/**
 * What the OpenAPI document needs beyond the `HttpApi`: the bearer scheme, the 401 and 500 every
 * route can answer, and one meaning per error status.
 */
import * as Predicate from "effect/Predicate"

/** What each error status means, in every operation's responses. */
export const statusMeanings: Readonly<Record<string, string>> = {
  "400": "Invalid input: nothing was read or changed",
  "401": "Missing or wrong bearer token (only when the server runs with KEEL_TOKEN); empty body",
  "404": "No such queue, reservation or cursor",
  "409": "Refused: it conflicts with the current state (nothing was changed)",
  "413": "The body, a payload or a batch exceeds its limit (nothing was changed)",
  "415": "The body is not declared as JSON (Content-Type must be application/json or absent)",
  "500": "An unexpected failure; the body never carries detail (the server log does)",
  "503": "The database failed, or the outcome of a write is unknown (see the error's fields)"
}

const records = (value: unknown): ReadonlyArray<readonly [string, Record<string, unknown>]> =>
  Predicate.isRecord(value)
    ? Object.entries(value).flatMap(([key, entry]) =>
        Predicate.isRecord(entry) ? [[key, entry] as const] : []
      )
    : []

/**
 * Completes the generated document with what lives outside the `HttpApi`: the bearer scheme (every
 * operation but `/health` lists it), the 401 and 500 every route can answer, and one meaning per
 * error status.
 */
export const completeDocument = (spec: Record<string, unknown>): Record<string, unknown> => {
  const components = Predicate.isRecord(spec.components) ? spec.components : {}
  const schemas = Predicate.isRecord(components.schemas) ? components.schemas : {}
  const internalError = {
    type: "object",
    required: ["_tag", "message"],
    properties: {
      _tag: { type: "string", enum: ["InternalError"] },
      message: { type: "string", enum: ["internal error"] }
    },
    additionalProperties: false
  }
  for (const [path, operations] of records(spec.paths)) {
    for (const [, operation] of records(operations)) {
      const responses = Predicate.isRecord(operation.responses) ? operation.responses : {}
      for (const [status, response] of records(responses)) {
        const meaning = statusMeanings[status]
        if (meaning !== undefined) response.description = meaning
      }
      responses["500"] = {
        description: statusMeanings["500"],
        content: { "application/json": { schema: { $ref: "#/components/schemas/InternalError" } } }
      }
      if (path !== "/health") {
        responses["401"] = { description: statusMeanings["401"] }
        operation.security = [{ bearer: [] }]
      }
      operation.responses = responses
    }
  }
  return {
    ...spec,
    components: {
      ...components,
      schemas: { ...schemas, InternalError: internalError },
      securitySchemes: {
        bearer: {
          type: "http",
          scheme: "bearer",
          description: "The server's KEEL_TOKEN. Required on every route but /health when it is set."
        }
      }
    }
  }
}
