/**
 * The queue routes of Keel's HTTP API: queues, sending, leasing, acknowledging, the archive and
 * dead letters, with the typed errors each can answer.
 */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schemas from "@keel/queue/Schemas"
import * as Schema from "effect/Schema"
import { QueueErrors } from "./ApiErrors.js"
import { bodyErrors, count, flag, messageId, queueName } from "./ApiParams.js"

const settings = Schemas.SettingsInput.fields
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
    description: `How long a read hides a message when the reader does not say, in ms (1 to ${hours(Schemas.maxVisibilityTimeoutMs)} hours).`
  }),
  maxDeliveries: settings.maxDeliveries.annotations({
    description: `Deliveries allowed before a message is dead-lettered (1 to ${Schemas.maxMaxDeliveries}).`
  }),
  retention: settings.retention.annotations({
    description: `How long archived messages (not dead letters) are kept, in ms (0 to ${days(Schemas.maxRetentionMs)} days).`
  }),
  concurrencyLimit: settings.concurrencyLimit.annotations({
    description: `At most this many of the queue's messages leased at once, by every consumer in every process together (1 to ${Schemas.maxConcurrencyLimit}); null removes the limit. Default none.`
  }),
  rateLimit: settings.rateLimit.annotations({
    description: `At most \`limit\` leases (1 to ${Schemas.maxRateLimit}) per \`interval\` ms (1 ms to ${hours(Schemas.maxRateIntervalMs)} hours), in windows aligned to the epoch, by every consumer together; null removes it. Default none.`
  }),
  groupConcurrency: settings.groupConcurrency.annotations({
    description: `Messages of one ordered group in flight at once, oldest first (1 to ${Schemas.maxGroupConcurrency}). Default 1.`
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
export const QueueList = Schema.Struct({ queues: Schema.Array(Schemas.QueueInfo) })

/** `{ id }`: the id of a sent message. */
export const Sent = Schema.Struct({ id: Schemas.MessageId })

/** `{ ids }`: message ids, in input order. */
export const MessageIds = Schema.Struct({ ids: Schema.Array(Schemas.MessageId) })

/** `{ messages }`: leased messages. */
export const LeasedList = Schema.Struct({ messages: Schema.Array(Schemas.Leased) })

/** `{ messages }`: a queue's messages in one state, oldest id first. */
export const MessageList = Schema.Struct({ messages: Schema.Array(Schemas.MessageInfo) })

/** `{ messages }`: archived messages or dead letters, newest first. */
export const ArchivedList = Schema.Struct({ messages: Schema.Array(Schemas.ArchivedMessage) })

/** The longest a `read` may wait for a message to arrive (long polling), in milliseconds. */
export const maxReadWaitMs = 20_000

/** `POST /queues/{name}/read`: lease messages, optionally waiting up to `wait` ms for one to arrive. */
export const ReadRequest = Schema.Struct({
  ...Schemas.ReadOptions.fields,
  /** Wait up to this many milliseconds (at most 20,000) while the queue is empty. Default 0. */
  wait: Schema.optional(Schema.Number)
})

/** The lease held on one message. */
export const LeaseBody = Schema.Struct({ lease: Schema.String })

/** Leases held on several messages (all are acknowledged, or none). */
export const LeasesBody = Schema.Struct({ leases: Schema.Array(Schemas.Lease) })

/** `release` of one message. */
export const ReleaseOne = Schema.Struct({ lease: Schema.String, ...Schemas.ReleaseOptions.fields })

/** `release` of several messages. */
export const ReleaseMany = Schema.Struct({
  leases: Schema.Array(Schemas.Lease),
  ...Schemas.ReleaseOptions.fields
})

/** `extend` of one lease; `visibilityTimeout` in milliseconds (default: the queue's). */
export const ExtendOne = Schema.Struct({
  lease: Schema.String,
  visibilityTimeout: Schema.optional(Schema.Number)
})

/** `extend` of several leases. */
export const ExtendMany = Schema.Struct({
  leases: Schema.Array(Schemas.Lease),
  visibilityTimeout: Schema.optional(Schema.Number)
})

/** `{ outcome }` of one release. */
export const Released = Schema.Struct({ outcome: Schemas.ReleaseOutcome })

/** `{ outcomes }` of a batch release, in input order. */
export const ReleasedMany = Schema.Struct({ outcomes: Schema.Array(Schemas.ReleaseOutcome) })

/** `{ visibleAt }`: the new lease deadline (epoch milliseconds). */
export const Extended = Schema.Struct({ visibleAt: Schemas.Timestamp })

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
      .addSuccess(Schemas.QueueInfo, { status: 201 })
      .addError(Q.InvalidQueueName)
      .addError(Q.InvalidOption)
      .addError(Q.QueueAlreadyExists)
      .annotate(OpenApi.Summary, "Create a queue")
  )
  .add(HttpApiEndpoint.get("list", "/queues").addSuccess(QueueList).annotate(OpenApi.Summary, "List queues"))
  .add(
    HttpApiEndpoint.get("info")`/queues/${queueName}`
      .addSuccess(Schemas.QueueInfo)
      .addError(Q.InvalidQueueName)
      .addError(Q.QueueNotFound)
      .annotate(OpenApi.Summary, "A queue's settings")
  )
  .add(
    HttpApiEndpoint.patch("update")`/queues/${queueName}`
      .setPayload(QueueSettings)
      .addError(bodyErrors)
      .addSuccess(Schemas.QueueInfo)
      .addError(Q.InvalidQueueName)
      .addError(Q.InvalidOption)
      .addError(Q.QueueNotFound)
      .annotate(OpenApi.Summary, "Change a queue's settings")
  )
  .add(
    HttpApiEndpoint.del("delete")`/queues/${queueName}`
      .setUrlParams(Schema.Struct({ force: flag }))
      .addSuccess(Schemas.Removed)
      .addError(Q.InvalidQueueName)
      .addError(Q.QueueNotFound)
      .addError(Q.QueueInFlight)
      .annotate(OpenApi.Summary, "Delete a queue (refused while messages are leased, unless force=true)")
  )
  .add(
    HttpApiEndpoint.post("purge")`/queues/${queueName}/purge`
      .setPayload(Schema.Struct({ archive: Schema.optional(Schema.Boolean) }))
      .addError(bodyErrors)
      .addSuccess(Schemas.Removed)
      .addError(Q.InvalidQueueName)
      .addError(Q.QueueNotFound)
      .annotate(OpenApi.Summary, "Delete every message (and with archive=true the archive)")
  )
  .add(
    HttpApiEndpoint.post("send")`/queues/${queueName}/messages`
      .setPayload(Schemas.OutgoingMessage)
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
      .setPayload(Schema.Struct({ messages: Schema.Array(Schemas.OutgoingMessage) }))
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
      .addSuccess(Schemas.MessageInfo)
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
      .addSuccess(Schema.Struct({ outcome: Schemas.CancelOutcome }))
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
      .setPayload(Schemas.MessageUpdate)
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
    HttpApiEndpoint.post("deleteDead")`/queues/${queueName}/dead/delete`
      .setPayload(RequeueRequest)
      .addError(bodyErrors)
      .addSuccess(MessageIds)
      .addError(Q.InvalidQueueName)
      .addError(Q.QueueNotFound)
      .addError(Q.InvalidOption)
      .addError(Q.BatchTooLarge)
      .annotate(OpenApi.Summary, "Delete dead letters for good (these ids, or the oldest limit)")
  )
  .add(
    HttpApiEndpoint.get("listMessages")`/queues/${queueName}/messages`
      .setUrlParams(
        Schema.Struct({
          state: Schema.optional(Schema.Literal("queued", "delayed", "leased")),
          after: count,
          limit: count
        })
      )
      .addSuccess(MessageList)
      .addError(Q.InvalidQueueName)
      .addError(Q.QueueNotFound)
      .addError(Q.InvalidOption)
      .annotate(
        OpenApi.Summary,
        "A page of the queue's messages in one state (queued: visible now, delayed, leased), oldest id first"
      )
  )
  .add(
    HttpApiEndpoint.get("metrics")`/queues/${queueName}/metrics`
      .addSuccess(Schemas.QueueMetrics)
      .addError(Q.InvalidQueueName)
      .addError(Q.QueueNotFound)
      .annotate(OpenApi.Summary, "A queue's counts now")
  )
  .addError(Q.QueueStoreError)
  .annotate(OpenApi.Description, "Durable queues: send, lease, acknowledge, dead letters")
