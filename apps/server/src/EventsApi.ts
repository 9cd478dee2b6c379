/**
 * The event log's routes (`Queue.events`): `GET /queues/{name}/events` and `GET /events` answer the
 * events recorded after `since`, oldest first, a page at a time, as a long poll. Only queues
 * created or changed with `events: true` record events.
 */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schemas from "@keel/queue/Schemas"
import * as Schema from "effect/Schema"
import { QueueErrors } from "./ApiErrors.js"

/** The longest a request may wait for an event to be recorded, in milliseconds (as long as a `read`'s). */
export const maxEventsWaitMs = 20_000

/** The most events one answer holds. */
export const maxEventsLimit = 1000

/** Events per answer when the request does not say. */
export const defaultEventsLimit = 100

/** The query string of both routes; the handler checks the values (`InvalidOption`, 400). */
export const EventsQuery = Schema.Struct({
  since: Schema.optional(Schema.NumberFromString).annotations({
    description:
      "Events after this id: 0 (the default) for every event still kept, else the `next` of the previous answer."
  }),
  limit: Schema.optional(Schema.NumberFromString).annotations({
    description: `At most this many events (1 to ${maxEventsLimit}, default ${defaultEventsLimit}); an answer may hold fewer while more are recorded.`
  }),
  wait: Schema.optional(Schema.NumberFromString).annotations({
    description: `While no event is recorded after \`since\`, wait up to this many ms for one (0 to ${maxEventsWaitMs}, default 0).`
  })
})

/** `{ events, next }`: a page of the log and where the next one starts. */
export const EventsPage = Schema.Struct({
  events: Schema.Array(Schemas.QueueEvent),
  next: Schema.Int.annotations({
    description: "Pass as `since` to get the events after these (`since` itself when there are none)."
  })
})

const Q = QueueErrors

const longPoll =
  "Answers at once when events are recorded after `since`, else when one is recorded or `wait` ms have " +
  "passed (then with no events). Resume with `since=next`: each event is seen once, in id order."

/** The event log routes. */
export const EventsGroup = HttpApiGroup.make("events")
  .add(
    HttpApiEndpoint.get("queue")`/queues/${HttpApiSchema.param("name", Schema.String)}/events`
      .setUrlParams(EventsQuery)
      .addSuccess(EventsPage)
      .addError(Q.InvalidQueueName)
      .addError(Q.QueueNotFound)
      .addError(Q.InvalidOption)
      .annotate(OpenApi.Summary, "A queue's events after since, waiting up to wait ms for one")
      .annotate(OpenApi.Description, longPoll)
  )
  .add(
    HttpApiEndpoint.get("all", "/events")
      .setUrlParams(EventsQuery)
      .addSuccess(EventsPage)
      .addError(Q.InvalidOption)
      .annotate(OpenApi.Summary, "Every queue's events after since, waiting up to wait ms for one")
      .annotate(OpenApi.Description, longPoll)
  )
  .addError(Q.QueueStoreError)
  .annotate(
    OpenApi.Description,
    "The event log: each message's lifecycle (sent, leased, released, acknowledged, deleted, dead, cancelled) in queues with events on"
  )
