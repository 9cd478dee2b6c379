/**
 * The typed errors of Keel's HTTP API, each with the status it is answered with: the server's own
 * and those of the queue, reservation and cursor services. Endpoint modules (`Api.ts`,
 * `EventsApi.ts`) declare them on their routes, so `/openapi.json` documents each.
 */
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as CursorError from "@keel/cursor/CursorError"
import * as QueueError from "@keel/queue/QueueError"
import * as ReservationError from "@keel/reservation/ReservationError"
import type { Schema } from "effect"
import {
  BodyTooLarge,
  CursorNotFound,
  InvalidJson,
  Unhealthy,
  UnsupportedMediaType,
  withMessage
} from "./HttpError.js"

/** An error schema on the wire (with its message) answered with `status`. */
export const answer = <A extends { readonly message: string }, I extends object>(
  schema: Schema.Schema<A, I>,
  identifier: string,
  status: number
) => withMessage(schema, identifier).annotations(HttpApiSchema.annotations({ status }))

/** The server's own errors. */
export const ServerErrors = {
  BodyTooLarge: answer(BodyTooLarge, "BodyTooLarge", 413),
  InvalidJson: answer(InvalidJson, "InvalidJson", 400),
  UnsupportedMediaType: answer(UnsupportedMediaType, "UnsupportedMediaType", 415),
  CursorNotFound: answer(CursorNotFound, "CursorNotFound", 404),
  Unhealthy: answer(Unhealthy, "Unhealthy", 503)
}

/** The queue service's errors. */
export const QueueErrors = {
  InvalidQueueName: answer(QueueError.InvalidQueueName, "InvalidQueueName", 400),
  InvalidOption: answer(QueueError.InvalidOption, "InvalidOption", 400),
  InvalidPayload: answer(QueueError.InvalidPayload, "InvalidPayload", 400),
  QueueNotFound: answer(QueueError.QueueNotFound, "QueueNotFound", 404),
  QueueAlreadyExists: answer(QueueError.QueueAlreadyExists, "QueueAlreadyExists", 409),
  QueueInFlight: answer(QueueError.QueueInFlight, "QueueInFlight", 409),
  LeaseLost: answer(QueueError.LeaseLost, "LeaseLost", 409),
  MessageNotFound: answer(QueueError.MessageNotFound, "MessageNotFound", 404),
  MessageLeased: answer(QueueError.MessageLeased, "MessageLeased", 409),
  PayloadTooLarge: answer(QueueError.PayloadTooLarge, "PayloadTooLarge", 413),
  BatchTooLarge: answer(QueueError.BatchTooLarge, "BatchTooLarge", 413),
  SendOutcomeUnknown: answer(QueueError.SendOutcomeUnknown, "SendOutcomeUnknown", 503),
  QueueStoreError: answer(QueueError.QueueStoreError, "QueueStoreError", 503)
}

/** The reservation registry's errors. */
export const ReservationErrors = {
  InvalidPort: answer(ReservationError.InvalidPort, "InvalidPort", 400),
  InvalidRange: answer(ReservationError.InvalidRange, "InvalidRange", 400),
  InvalidTag: answer(ReservationError.InvalidTag, "InvalidTag", 400),
  InvalidLabel: answer(ReservationError.InvalidLabel, "InvalidLabel", 400),
  InvalidPath: answer(ReservationError.InvalidPath, "InvalidPath", 400),
  InvalidRequest: answer(ReservationError.InvalidRequest, "InvalidRequest", 400),
  UnrelatedPath: answer(ReservationError.UnrelatedPath, "UnrelatedPath", 400),
  ReservationNotFound: answer(ReservationError.ReservationNotFound, "ReservationNotFound", 404),
  NoPortAvailable: answer(ReservationError.NoPortAvailable, "NoPortAvailable", 409),
  PreferredPortReserved: answer(ReservationError.PreferredPortReserved, "PreferredPortReserved", 409),
  StickyFieldChanged: answer(ReservationError.StickyFieldChanged, "StickyFieldChanged", 409),
  MigrationConflict: answer(ReservationError.MigrationConflict, "MigrationConflict", 409),
  ReservationStoreError: answer(ReservationError.ReservationStoreError, "ReservationStoreError", 503)
}

/** The cursor store's errors. */
export const CursorErrors = {
  InvalidPeer: answer(CursorError.InvalidPeer, "InvalidPeer", 400),
  InvalidPosition: answer(CursorError.InvalidPosition, "InvalidPosition", 400),
  StoreClosed: answer(CursorError.StoreClosed, "StoreClosed", 503),
  CursorStoreError: answer(CursorError.CursorStoreError, "CursorStoreError", 503),
  FlushFailed: answer(CursorError.FlushFailed, "FlushFailed", 503)
}
