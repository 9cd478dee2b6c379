/**
 * Pieces shared by the API's route groups: path parameters (validated by the services), the errors
 * of every request with a body, and the query-parameter codecs.
 */
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as Schema from "effect/Schema"
import { ServerErrors } from "./ApiErrors.js"

/** A queue name in a path; the service validates it (`InvalidQueueName`, 400). */
export const queueName = HttpApiSchema.param("name", Schema.String)

/** A message id in a path. */
export const messageId = HttpApiSchema.param("id", Schema.NumberFromString)

/** A peer name in a path (percent-encoded); the service validates it (`InvalidPeer`, 400). */
export const peer = HttpApiSchema.param("peer", Schema.String)

/**
 * Errors of every request with a body: over `KEEL_MAX_BODY_BYTES` (413), not JSON text or nested
 * too deep (400), or declared as another media type (415).
 */
export const bodyErrors = Schema.Union(
  ServerErrors.BodyTooLarge,
  ServerErrors.InvalidJson,
  ServerErrors.UnsupportedMediaType
)

/** An optional `true`/`false` query parameter. */
export const flag = Schema.optional(Schema.BooleanFromString)

/** An optional integer query parameter. */
export const count = Schema.optional(Schema.NumberFromString)
