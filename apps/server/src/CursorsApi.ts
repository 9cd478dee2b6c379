/** The cursor routes of Keel's HTTP API, with the typed errors each can answer. */
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { Cursor } from "@keel/cursor"
import { Schema } from "effect"
import { CursorErrors, ServerErrors } from "./ApiErrors.js"
import { bodyErrors, peer } from "./ApiParams.js"

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
