/**
 * Keel's HTTP API: queues, reservations, cursors, schedules, the event log (`EventsApi.ts`) and the
 * system routes, as one `HttpApi`; the errors and their statuses are in `ApiErrors.ts`. Request
 * and response bodies reuse the packages' Schemas; every typed error an endpoint can return is
 * declared on it with its status, so `/openapi.json` documents it and the server encodes it as
 * `{ _tag, message, ...fields }`.
 *
 * Statuses: 400 invalid input, 404 unknown queue / reservation / cursor, 409 a conflict with the
 * current state (name taken, lease lost, messages in flight, no free port…), 413 a body, payload or
 * batch over its limit, 415 a body that is not JSON, 503 the database failed or the outcome is
 * unknown. Requests that are not valid HTTP, or too slow, are answered before routing (`Transport`).
 */
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Cursor } from "@keel/cursor"
import { Message, QueueError, Schedule } from "@keel/queue"
import { Schemas } from "@keel/reservation"
import { Predicate, Schema } from "effect"
import { answer, CursorErrors, QueueErrors, ReservationErrors, ServerErrors } from "./ApiErrors.js"
import { EventsGroup } from "./EventsApi.js"

/** The API's version, as the OpenAPI document states it. */
export const version = "0.1.0"

// ---------------------------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------------------------

/** A queue name in a path; the service validates it (`InvalidQueueName`, 400). */
const queueName = HttpApiSchema.param("name", Schema.String)

/** A message id in a path. */
const messageId = HttpApiSchema.param("id", Schema.NumberFromString)

/** A peer name in a path (percent-encoded); the service validates it (`InvalidPeer`, 400). */
const peer = HttpApiSchema.param("peer", Schema.String)

/**
 * Errors of every request with a body: over `KEEL_MAX_BODY_BYTES` (413), not JSON text or nested
 * too deep (400), or declared as another media type (415).
 */
const bodyErrors = Schema.Union(
  ServerErrors.BodyTooLarge,
  ServerErrors.InvalidJson,
  ServerErrors.UnsupportedMediaType
)

/** An optional `true`/`false` query parameter. */
const flag = Schema.optional(Schema.BooleanFromString)

/** An optional integer query parameter. */
const count = Schema.optional(Schema.NumberFromString)

// ---------------------------------------------------------------------------------------------
// Queues
// ---------------------------------------------------------------------------------------------

const settings = Message.SettingsInput.fields
const hours = (ms: number) => ms / 3_600_000
const days = (ms: number) => ms / 86_400_000

/**
 * A queue's settings on the wire (`POST /queues`, `PATCH /queues/{name}`), each described in the
 * OpenAPI document: durations in milliseconds; an absent field keeps its default (or current)
 * value; the queue checks the values (`InvalidOption` naming the field, 400).
 */
export const QueueSettings = Schema.Struct({
  ...settings,
  visibilityTimeout: settings.visibilityTimeout.annotations({
    description: `How long a read hides a message when the reader does not say, in ms (1 to ${hours(Message.maxVisibilityTimeoutMs)} hours).`
  }),
  maxDeliveries: settings.maxDeliveries.annotations({
    description: `Deliveries allowed before a message is dead-lettered (1 to ${Message.maxMaxDeliveries}).`
  }),
  retention: settings.retention.annotations({
    description: `How long archived messages (not dead letters) are kept, in ms (0 to ${days(Message.maxRetentionMs)} days).`
  }),
  concurrencyLimit: settings.concurrencyLimit.annotations({
    description: `At most this many of the queue's messages leased at once, by every consumer in every process together (1 to ${Message.maxConcurrencyLimit}); null removes the limit. Default none.`
  }),
  rateLimit: settings.rateLimit.annotations({
    description: `At most \`limit\` leases (1 to ${Message.maxRateLimit}) per \`interval\` ms (1 ms to ${hours(Message.maxRateIntervalMs)} hours), in windows aligned to the epoch, by every consumer together; null removes it. Default none.`
  }),
  groupConcurrency: settings.groupConcurrency.annotations({
    description: `Messages of one ordered group in flight at once, oldest first (1 to ${Message.maxGroupConcurrency}). Default 1.`
  }),
  groupOnDead: settings.groupOnDead.annotations({
    description:
      "What a dead letter does to its ordered group: `skip` (the group goes on with its next message; the default) or `block` (the group waits until the dead letter is requeued or purged)."
  }),
  events: settings.events.annotations({
    description:
      "Record each message's lifecycle in the event log (`GET /queues/{name}/events`), kept as long as the retention. Default false."
  })
})

/** `POST /queues`: a new queue with optional settings (see `QueueSettings`). */
export const CreateQueue = Schema.Struct({ name: Schema.String, ...QueueSettings.fields })

/** `{ queues }`: every queue. */
export const QueueList = Schema.Struct({ queues: Schema.Array(Message.QueueInfo) })

/** `{ id }`: the id of a sent message. */
export const Sent = Schema.Struct({ id: Message.MessageId })

/** `{ ids }`: message ids, in input order. */
export const MessageIds = Schema.Struct({ ids: Schema.Array(Message.MessageId) })

/** `{ messages }`: leased messages. */
export const LeasedList = Schema.Struct({ messages: Schema.Array(Message.Leased) })

/** `{ messages }`: archived messages or dead letters, newest first. */
export const ArchivedList = Schema.Struct({ messages: Schema.Array(Message.ArchivedMessage) })

/** The longest a `read` may wait for a message to arrive (long polling), in milliseconds. */
export const maxReadWaitMs = 20_000

/** `POST /queues/{name}/read`: lease messages, optionally waiting up to `wait` ms for one to arrive. */
export const ReadRequest = Schema.Struct({
  ...Message.ReadOptions.fields,
  /** Wait up to this many milliseconds (at most 20,000) while the queue is empty. Default 0. */
  wait: Schema.optional(Schema.Number)
})

/** The lease held on one message. */
export const LeaseBody = Schema.Struct({ lease: Schema.String })

/** Leases held on several messages (all are acknowledged, or none). */
export const LeasesBody = Schema.Struct({ leases: Schema.Array(Message.Lease) })

/** `release` of one message. */
export const ReleaseOne = Schema.Struct({ lease: Schema.String, ...Message.ReleaseOptions.fields })

/** `release` of several messages. */
export const ReleaseMany = Schema.Struct({
  leases: Schema.Array(Message.Lease),
  ...Message.ReleaseOptions.fields
})

/** `extend` of one lease; `visibilityTimeout` in milliseconds (default: the queue's). */
export const ExtendOne = Schema.Struct({
  lease: Schema.String,
  visibilityTimeout: Schema.optional(Schema.Number)
})

/** `extend` of several leases. */
export const ExtendMany = Schema.Struct({
  leases: Schema.Array(Message.Lease),
  visibilityTimeout: Schema.optional(Schema.Number)
})

/** `{ outcome }` of one release. */
export const Released = Schema.Struct({ outcome: Message.ReleaseOutcome })

/** `{ outcomes }` of a batch release, in input order. */
export const ReleasedMany = Schema.Struct({ outcomes: Schema.Array(Message.ReleaseOutcome) })

/** `{ visibleAt }`: the new lease deadline (epoch milliseconds). */
export const Extended = Schema.Struct({ visibleAt: Message.Timestamp })

/** `POST /queues/{name}/dead/requeue`: these dead letters, or the oldest `limit`. */
export const RequeueRequest = Schema.Struct({
  ids: Schema.optional(Schema.Array(Schema.Number)),
  limit: Schema.optional(Schema.Number)
})

const Q = QueueErrors

/** Errors of lease-checked acknowledgements (each keeps its own status). */
const ackErrors = Schema.Union(Q.InvalidQueueName, Q.QueueNotFound, Q.InvalidOption, Q.LeaseLost)

/** The queue routes. */
export const QueuesGroup = HttpApiGroup.make("queues")
  .add(
    HttpApiEndpoint.post("create", "/queues")
      .setPayload(CreateQueue)
      .addError(bodyErrors)
      .addSuccess(Message.QueueInfo, { status: 201 })
      .addError(Q.InvalidQueueName)
      .addError(Q.InvalidOption)
      .addError(Q.QueueAlreadyExists)
      .annotate(OpenApi.Summary, "Create a queue")
  )
  .add(HttpApiEndpoint.get("list", "/queues").addSuccess(QueueList).annotate(OpenApi.Summary, "List queues"))
  .add(
    HttpApiEndpoint.get("info")`/queues/${queueName}`
      .addSuccess(Message.QueueInfo)
      .addError(Q.InvalidQueueName)
      .addError(Q.QueueNotFound)
      .annotate(OpenApi.Summary, "A queue's settings")
  )
  .add(
    HttpApiEndpoint.patch("update")`/queues/${queueName}`
      .setPayload(QueueSettings)
      .addError(bodyErrors)
      .addSuccess(Message.QueueInfo)
      .addError(Q.InvalidQueueName)
      .addError(Q.InvalidOption)
      .addError(Q.QueueNotFound)
      .annotate(OpenApi.Summary, "Change a queue's settings")
  )
  .add(
    HttpApiEndpoint.del("delete")`/queues/${queueName}`
      .setUrlParams(Schema.Struct({ force: flag }))
      .addSuccess(Message.Removed)
      .addError(Q.InvalidQueueName)
      .addError(Q.QueueNotFound)
      .addError(Q.QueueInFlight)
      .annotate(OpenApi.Summary, "Delete a queue (refused while messages are leased, unless force=true)")
  )
  .add(
    HttpApiEndpoint.post("purge")`/queues/${queueName}/purge`
      .setPayload(Schema.Struct({ archive: Schema.optional(Schema.Boolean) }))
      .addError(bodyErrors)
      .addSuccess(Message.Removed)
      .addError(Q.InvalidQueueName)
      .addError(Q.QueueNotFound)
      .annotate(OpenApi.Summary, "Delete every message (and with archive=true the archive)")
  )
  .add(
    HttpApiEndpoint.post("send")`/queues/${queueName}/messages`
      .setPayload(Message.OutgoingMessage)
      .addError(bodyErrors)
      .addSuccess(Sent, { status: 201 })
      .addError(Q.InvalidQueueName)
      .addError(Q.QueueNotFound)
      .addError(Q.InvalidPayload)
      .addError(Q.InvalidOption)
      .addError(Q.PayloadTooLarge)
      .addError(Q.SendOutcomeUnknown)
      .annotate(OpenApi.Summary, "Send a message")
  )
  .add(
    HttpApiEndpoint.post("sendBatch")`/queues/${queueName}/messages/batch`
      .setPayload(Schema.Struct({ messages: Schema.Array(Message.OutgoingMessage) }))
      .addError(bodyErrors)
      .addSuccess(MessageIds, { status: 201 })
      .addError(Q.InvalidQueueName)
      .addError(Q.QueueNotFound)
      .addError(Q.InvalidPayload)
      .addError(Q.InvalidOption)
      .addError(Q.PayloadTooLarge)
      .addError(Q.BatchTooLarge)
      .addError(Q.SendOutcomeUnknown)
      .annotate(OpenApi.Summary, "Send up to 10,000 messages in one transaction")
  )
  .add(
    HttpApiEndpoint.post("read")`/queues/${queueName}/read`
      .setPayload(ReadRequest)
      .addError(bodyErrors)
      .addSuccess(LeasedList)
      .addError(Q.InvalidQueueName)
      .addError(Q.QueueNotFound)
      .addError(Q.InvalidOption)
      .annotate(OpenApi.Summary, "Lease up to qty visible messages, waiting up to wait ms for one")
  )
  .add(
    HttpApiEndpoint.post("deleteMessage")`/queues/${queueName}/messages/${messageId}/delete`
      .setPayload(LeaseBody)
      .addError(bodyErrors)
      .addSuccess(HttpApiSchema.NoContent)
      .addError(ackErrors)
      .annotate(OpenApi.Summary, "Delete a leased message")
  )
  .add(
    HttpApiEndpoint.post("deleteMessages")`/queues/${queueName}/messages/delete`
      .setPayload(LeasesBody)
      .addError(bodyErrors)
      .addSuccess(HttpApiSchema.NoContent)
      .addError(ackErrors)
      .addError(Q.BatchTooLarge)
      .annotate(OpenApi.Summary, "Delete leased messages: all of them, or none")
  )
  .add(
    HttpApiEndpoint.post("archiveMessage")`/queues/${queueName}/messages/${messageId}/archive`
      .setPayload(LeaseBody)
      .addError(bodyErrors)
      .addSuccess(HttpApiSchema.NoContent)
      .addError(ackErrors)
      .annotate(OpenApi.Summary, "Archive a leased message")
  )
  .add(
    HttpApiEndpoint.post("archiveMessages")`/queues/${queueName}/messages/archive`
      .setPayload(LeasesBody)
      .addError(bodyErrors)
      .addSuccess(HttpApiSchema.NoContent)
      .addError(ackErrors)
      .addError(Q.BatchTooLarge)
      .annotate(OpenApi.Summary, "Archive leased messages: all of them, or none")
  )
  .add(
    HttpApiEndpoint.get("getMessage")`/queues/${queueName}/messages/${messageId}`
      .addSuccess(Message.MessageInfo)
      .addError(Q.InvalidQueueName)
      .addError(Q.InvalidOption)
      .addError(Q.QueueNotFound)
      .addError(Q.MessageNotFound)
      .annotate(OpenApi.Summary, "A message as it is now: queued, delayed or leased, with its progress")
  )
  .add(
    HttpApiEndpoint.post("progressMessage")`/queues/${queueName}/messages/${messageId}/progress`
      .setPayload(Schema.Struct({ lease: Schema.String, progress: Schema.Unknown }))
      .addError(bodyErrors)
      .addSuccess(HttpApiSchema.NoContent)
      .addError(ackErrors)
      .annotate(OpenApi.Summary, "Report the progress of a leased message (any JSON value up to 4 KiB)")
  )
  .add(
    HttpApiEndpoint.post("cancelMessage")`/queues/${queueName}/messages/${messageId}/cancel`
      .addSuccess(Schema.Struct({ outcome: Message.CancelOutcome }))
      .addError(Q.InvalidQueueName)
      .addError(Q.InvalidOption)
      .addError(Q.QueueNotFound)
      .addError(Q.MessageNotFound)
      .annotate(
        OpenApi.Summary,
        "Cancel a message by id, queued or leased: archived as cancelled, a running handler interrupted"
      )
  )
  .add(
    HttpApiEndpoint.patch("updateMessage")`/queues/${queueName}/messages/${messageId}`
      .setPayload(Message.MessageUpdate)
      .addError(bodyErrors)
      .addSuccess(HttpApiSchema.NoContent)
      .addError(Q.InvalidQueueName)
      .addError(Q.InvalidOption)
      .addError(Q.QueueNotFound)
      .addError(Q.MessageNotFound)
      .addError(Q.MessageLeased)
      .annotate(OpenApi.Summary, "Change a queued message's availability (delay from now) or priority")
  )
  .add(
    HttpApiEndpoint.post("releaseMessage")`/queues/${queueName}/messages/${messageId}/release`
      .setPayload(ReleaseOne)
      .addError(bodyErrors)
      .addSuccess(Released)
      .addError(ackErrors)
      .annotate(OpenApi.Summary, "End a lease: visible again after delay, or dead-lettered")
  )
  .add(
    HttpApiEndpoint.post("releaseMessages")`/queues/${queueName}/messages/release`
      .setPayload(ReleaseMany)
      .addError(bodyErrors)
      .addSuccess(ReleasedMany)
      .addError(ackErrors)
      .addError(Q.BatchTooLarge)
      .annotate(OpenApi.Summary, "End leases: all of them, or none")
  )
  .add(
    HttpApiEndpoint.post("extendMessage")`/queues/${queueName}/messages/${messageId}/extend`
      .setPayload(ExtendOne)
      .addError(bodyErrors)
      .addSuccess(Extended)
      .addError(ackErrors)
      .annotate(OpenApi.Summary, "Extend a lease to visibilityTimeout from now")
  )
  .add(
    HttpApiEndpoint.post("extendMessages")`/queues/${queueName}/messages/extend`
      .setPayload(ExtendMany)
      .addError(bodyErrors)
      .addSuccess(Extended)
      .addError(ackErrors)
      .addError(Q.BatchTooLarge)
      .annotate(OpenApi.Summary, "Extend leases: all of them, or none")
  )
  .add(
    HttpApiEndpoint.get("archive")`/queues/${queueName}/archive`
      .setUrlParams(Schema.Struct({ dead: flag, limit: count, before: count }))
      .addSuccess(ArchivedList)
      .addError(Q.InvalidQueueName)
      .addError(Q.QueueNotFound)
      .addError(Q.InvalidOption)
      .annotate(OpenApi.Summary, "Archived messages and dead letters, newest first")
  )
  .add(
    HttpApiEndpoint.get("deadLetters")`/queues/${queueName}/dead`
      .setUrlParams(Schema.Struct({ limit: count, before: count }))
      .addSuccess(ArchivedList)
      .addError(Q.InvalidQueueName)
      .addError(Q.QueueNotFound)
      .addError(Q.InvalidOption)
      .annotate(OpenApi.Summary, "Dead letters, newest first")
  )
  .add(
    HttpApiEndpoint.post("requeueDead")`/queues/${queueName}/dead/requeue`
      .setPayload(RequeueRequest)
      .addError(bodyErrors)
      .addSuccess(MessageIds)
      .addError(Q.InvalidQueueName)
      .addError(Q.QueueNotFound)
      .addError(Q.InvalidOption)
      .addError(Q.BatchTooLarge)
      .annotate(OpenApi.Summary, "Move dead letters back into the queue")
  )
  .add(
    HttpApiEndpoint.get("metrics")`/queues/${queueName}/metrics`
      .addSuccess(Message.QueueMetrics)
      .addError(Q.InvalidQueueName)
      .addError(Q.QueueNotFound)
      .annotate(OpenApi.Summary, "A queue's counts now")
  )
  .addError(Q.QueueStoreError)
  .annotate(OpenApi.Description, "Durable queues: send, lease, acknowledge, dead letters")

// ---------------------------------------------------------------------------------------------
// Reservations
// ---------------------------------------------------------------------------------------------

/** `cwd` is optional over HTTP: without it, the unrelated-path guard compares the path with itself. */
const optionalCwd = { cwd: Schema.optional(Schema.String) }

/** `POST /reservations`. */
export const ReserveBody = Schema.Struct({ ...Schemas.ReserveRequest.fields, ...optionalCwd })

/** `POST /reservations/group`. */
export const GroupBody = Schema.Struct({ ...Schemas.GroupRequest.fields, ...optionalCwd })

/** `POST /reservations/release`. */
export const ReleaseBody = Schema.Struct({ ...Schemas.ReleaseRequest.fields, ...optionalCwd })

/** `{ reservations }`: matching reservations, by path then tag. */
export const ReservationList = Schema.Struct({ reservations: Schema.Array(Schemas.Reservation) })

const R = ReservationErrors

/** Errors of every request that allocates ports (each keeps its own status). */
const reserveErrors = Schema.Union(
  R.InvalidPort,
  R.InvalidRange,
  R.InvalidTag,
  R.InvalidLabel,
  R.InvalidPath,
  R.InvalidRequest,
  R.UnrelatedPath,
  R.NoPortAvailable,
  R.PreferredPortReserved,
  R.StickyFieldChanged
)

/** The reservation routes. */
export const ReservationsGroup = HttpApiGroup.make("reservations")
  .add(
    HttpApiEndpoint.post("reserve", "/reservations")
      .setPayload(ReserveBody)
      .addError(bodyErrors)
      .addSuccess(Schemas.Reserved)
      .addError(reserveErrors)
      .annotate(OpenApi.Summary, "Reserve a port for (path, tag): the existing one, else a free one")
  )
  .add(
    HttpApiEndpoint.post("reserveGroup", "/reservations/group")
      .setPayload(GroupBody)
      .addError(bodyErrors)
      .addSuccess(Schemas.GroupReserved)
      .addError(reserveErrors)
      .annotate(OpenApi.Summary, "Reserve a port for every service of a path: all of them, or none")
  )
  .add(
    HttpApiEndpoint.post("release", "/reservations/release")
      .setPayload(ReleaseBody)
      .addError(bodyErrors)
      .addSuccess(Schemas.Released)
      .addError(R.InvalidPath)
      .addError(R.InvalidTag)
      .addError(R.InvalidRequest)
      .addError(R.UnrelatedPath)
      .annotate(OpenApi.Summary, "Release one tag, every tag, or (recursive) everything below a path")
  )
  .add(
    HttpApiEndpoint.get("list", "/reservations")
      .setUrlParams(Schemas.ListRequest)
      .addSuccess(ReservationList)
      .addError(R.InvalidPath)
      .addError(R.InvalidTag)
      .addError(R.InvalidLabel)
      .annotate(OpenApi.Summary, "Reservations matching every given filter")
  )
  .add(
    HttpApiEndpoint.get("show", "/reservations/show")
      .setUrlParams(Schemas.ShowRequest)
      .addSuccess(Schemas.Reservation)
      .addError(R.InvalidPath)
      .addError(R.InvalidTag)
      .addError(R.ReservationNotFound)
      .annotate(OpenApi.Summary, "The reservation of one (path, tag)")
  )
  .add(
    HttpApiEndpoint.get(
      "showPort"
    )`/reservations/ports/${HttpApiSchema.param("port", Schema.NumberFromString)}`
      .addSuccess(Schemas.Reservation)
      .addError(R.InvalidPort)
      .addError(R.ReservationNotFound)
      .annotate(OpenApi.Summary, "The reservation holding one port")
  )
  .add(
    HttpApiEndpoint.post("cleanup", "/reservations/cleanup")
      .setPayload(Schemas.CleanupRequest)
      .addError(bodyErrors)
      .addSuccess(Schemas.CleanupReport)
      .addError(R.InvalidRequest)
      .annotate(OpenApi.Summary, "Remove expired, orphaned or unused reservations (dryRun reports only)")
  )
  .addError(R.ReservationStoreError)
  .annotate(OpenApi.Description, "Port reservations keyed by (path, tag) that two processes never share")

// ---------------------------------------------------------------------------------------------
// Cursors
// ---------------------------------------------------------------------------------------------

/** `{ peer, position }`: one peer's latest position. */
export const CursorPosition = Schema.Struct({ peer: Schema.String, position: Schema.String })

/** `{ cursors }`: every cursor of the server's namespace, by peer. */
export const CursorList = Schema.Struct({ namespace: Schema.String, cursors: Schema.Array(Cursor.Cursor) })

/** `PUT /cursors/{peer}` and `POST /cursors/{peer}/reset`. */
export const PositionBody = Schema.Struct({ position: Schema.String })

/** `{ deleted }`: whether the peer had a cursor. */
export const Deleted = Schema.Struct({ deleted: Schema.Boolean })

const C = CursorErrors

/** The cursor routes. */
export const CursorsGroup = HttpApiGroup.make("cursors")
  .add(
    HttpApiEndpoint.get("list", "/cursors")
      .addSuccess(CursorList)
      .addError(C.CursorStoreError)
      .annotate(OpenApi.Summary, "Every cursor, stored or pending")
  )
  .add(
    HttpApiEndpoint.post("flush", "/cursors/flush")
      .addSuccess(Cursor.FlushResult)
      .addError(C.FlushFailed)
      .annotate(OpenApi.Summary, "Persist every pending cursor now")
  )
  .add(
    HttpApiEndpoint.get("get")`/cursors/${peer}`
      .addSuccess(CursorPosition)
      .addError(C.InvalidPeer)
      .addError(ServerErrors.CursorNotFound)
      .addError(C.CursorStoreError)
      .annotate(OpenApi.Summary, "A peer's latest position")
  )
  .add(
    HttpApiEndpoint.put("set")`/cursors/${peer}`
      .setPayload(PositionBody)
      .addError(bodyErrors)
      .addSuccess(Cursor.SetResult)
      .addError(C.InvalidPeer)
      .addError(C.InvalidPosition)
      .addError(C.StoreClosed)
      .annotate(OpenApi.Summary, "Advance a peer's position (older positions are ignored as stale)")
  )
  .add(
    HttpApiEndpoint.post("reset")`/cursors/${peer}/reset`
      .setPayload(PositionBody)
      .addError(bodyErrors)
      .addSuccess(CursorPosition)
      .addError(C.InvalidPeer)
      .addError(C.InvalidPosition)
      .addError(C.CursorStoreError)
      .annotate(OpenApi.Summary, "Move a peer to a position, backwards too, written at once")
  )
  .add(
    HttpApiEndpoint.del("delete")`/cursors/${peer}`
      .addSuccess(Deleted)
      .addError(C.InvalidPeer)
      .addError(C.CursorStoreError)
      .annotate(OpenApi.Summary, "Remove a peer's cursor")
  )
  .annotate(OpenApi.Description, "Durable per-peer stream positions that never move backwards")

// ---------------------------------------------------------------------------------------------
// System
// ---------------------------------------------------------------------------------------------

/** `GET /health`: the database answered. */
export const Health = Schema.Struct({ status: Schema.Literal("ok") })

/** The system routes. */
export const SystemGroup = HttpApiGroup.make("system", { topLevel: true })
  .add(
    HttpApiEndpoint.get("health", "/health")
      .addSuccess(Health)
      .addError(ServerErrors.Unhealthy)
      .annotate(OpenApi.Summary, "Whether the database answers a query (no token needed)")
  )
  .add(
    HttpApiEndpoint.get("metrics", "/metrics")
      .addSuccess(HttpApiSchema.Text({ contentType: "text/plain; version=0.0.4; charset=utf-8" }))
      .annotate(OpenApi.Summary, "Prometheus metrics of this process")
  )
  .annotate(OpenApi.Description, "Health and metrics")

// ---------------------------------------------------------------------------------------------
// The OpenAPI document
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Schedules
// ---------------------------------------------------------------------------------------------

/** A schedule name in a path; the service validates it. */
const scheduleName = HttpApiSchema.param("name", Schema.String)

/** `POST /schedules`: `cron` (with `timeZone`) or `everyMs`; durations in milliseconds. */
export const CreateSchedule = Schema.Struct({
  name: Schema.String,
  queue: Schema.String,
  cron: Schema.optional(Schema.String),
  timeZone: Schema.optional(Schema.String),
  everyMs: Schema.optional(Schema.Number),
  payload: Schema.optional(Schema.Unknown),
  priority: Schema.optional(Schema.Number),
  backfillMs: Schema.optional(Schema.Number)
})

/** `{ schedules }`: schedules by name. */
export const ScheduleList = Schema.Struct({ schedules: Schema.Array(Schedule.ScheduleInfo) })

/** The schedules' errors. */
export const ScheduleErrors = {
  InvalidSchedule: answer(QueueError.InvalidSchedule, "InvalidSchedule", 400),
  ScheduleNotFound: answer(QueueError.ScheduleNotFound, "ScheduleNotFound", 404),
  ScheduleAlreadyExists: answer(QueueError.ScheduleAlreadyExists, "ScheduleAlreadyExists", 409)
}

const S = ScheduleErrors

/** The schedule routes. */
export const SchedulesGroup = HttpApiGroup.make("schedules")
  .add(
    HttpApiEndpoint.get("list", "/schedules")
      .setUrlParams(Schema.Struct({ queue: Schema.optional(Schema.String) }))
      .addSuccess(ScheduleList)
      .annotate(OpenApi.Summary, "Every schedule (of one queue with ?queue=), by name")
  )
  .add(
    HttpApiEndpoint.post("create", "/schedules")
      .setPayload(CreateSchedule)
      .addError(bodyErrors)
      .addSuccess(Schedule.ScheduleInfo, { status: 201 })
      .addError(S.InvalidSchedule)
      .addError(S.ScheduleAlreadyExists)
      .addError(Q.InvalidQueueName)
      .addError(Q.QueueNotFound)
      .addError(Q.InvalidPayload)
      .addError(Q.PayloadTooLarge)
      .annotate(OpenApi.Summary, "Create a schedule: cron (seconds optional, timeZone) or everyMs")
  )
  .add(
    HttpApiEndpoint.get("get")`/schedules/${scheduleName}`
      .addSuccess(Schedule.ScheduleInfo)
      .addError(S.ScheduleNotFound)
      .annotate(OpenApi.Summary, "One schedule, with its next and last tick")
  )
  .add(
    HttpApiEndpoint.post("pause")`/schedules/${scheduleName}/pause`
      .addSuccess(Schedule.ScheduleInfo)
      .addError(S.ScheduleNotFound)
      .annotate(OpenApi.Summary, "Stop a schedule; its ticks until resume are skipped")
  )
  .add(
    HttpApiEndpoint.post("resume")`/schedules/${scheduleName}/resume`
      .addSuccess(Schedule.ScheduleInfo)
      .addError(S.ScheduleNotFound)
      .annotate(OpenApi.Summary, "Start a paused schedule again, from its next tick")
  )
  .add(
    HttpApiEndpoint.del("delete")`/schedules/${scheduleName}`
      .addSuccess(HttpApiSchema.NoContent)
      .addError(S.ScheduleNotFound)
      .annotate(OpenApi.Summary, "Delete a schedule (messages it already sent stay)")
  )
  .addError(Q.QueueStoreError)
  .annotate(OpenApi.Description, "Recurring messages: each tick of a cron or interval enqueued exactly once")

/** Keel's HTTP API. */
export class KeelApi extends HttpApi.make("keel")
  .add(QueuesGroup)
  .add(ReservationsGroup)
  .add(CursorsGroup)
  .add(SchedulesGroup)
  .add(EventsGroup)
  .add(SystemGroup)
  .annotateContext(
    OpenApi.annotations({
      title: "Keel",
      version,
      description:
        "Durable queues, port reservations and stream cursors over one SQL database (SQLite by default, " +
        "PostgreSQL for many machines). Errors are JSON `{ _tag, message, ...fields }`. When the server " +
        "runs with KEEL_TOKEN, every route but /health needs `Authorization: Bearer <token>`.",
      transform: completeDocument
    })
  ) {}
