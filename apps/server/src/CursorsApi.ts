/** The cursor routes of Keel's HTTP API, with the typed errors each can answer. */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Cursor from "@keel/cursor/Cursor"
import * as Schemas from "@keel/cursor/Schemas"
import * as Schema from "effect/Schema"
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

/** `{ lags }`: every cursor's lag against one head, by peer. */
export const LagList = Schema.Struct({ lags: Schema.Array(Schemas.Lag) })

/** `?head=`: the head of the stream, a position of the namespace's kind. */
export const HeadParam = Schema.Struct({ head: Schema.String })

/** `POST /cursor-tools/reset`: move many cursors (`peers`, or every stored one) to `target`; `dryRun` only reports. */
export const ResetRequest = Schema.Struct({
  target: Schemas.ResetTarget,
  peers: Schema.optional(Schema.Array(Schema.String)),
  dryRun: Schema.optional(Schema.Boolean)
})

/** `POST /cursor-tools/import`: cursors as `GET /cursor-tools/export` wrote them. */
export const ImportRequest = Schema.Struct({
  cursors: Schema.Array(Schemas.ExportedCursor),
  mode: Schema.optional(Schemas.ImportMode),
  dryRun: Schema.optional(Schema.Boolean)
})

/** `POST /cursor-tools/expire`: delete cursors idle for `idleForMs` milliseconds (at least 1). */
export const ExpireRequest = Schema.Struct({
  idleForMs: Schema.Int.pipe(Schema.positive()),
  dryRun: Schema.optional(Schema.Boolean)
})

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
  .add(
    HttpApiEndpoint.get("lags", "/cursor-tools/lag")
      .setUrlParams(HeadParam)
      .addSuccess(LagList)
      .addError(C.InvalidPosition)
      .addError(C.CursorStoreError)
      .annotate(OpenApi.Summary, "Every cursor's lag behind the given head")
  )
  .add(
    HttpApiEndpoint.get("lag")`/cursors/${peer}/lag`
      .setUrlParams(HeadParam)
      .addSuccess(Schemas.Lag)
      .addError(C.InvalidPeer)
      .addError(C.InvalidPosition)
      .addError(C.CursorStoreError)
      .annotate(OpenApi.Summary, "How far a peer is behind the given head")
  )
  .add(
    HttpApiEndpoint.post("resetMany", "/cursor-tools/reset")
      .setPayload(ResetRequest)
      .addError(bodyErrors)
      .addSuccess(Schemas.ResetResult)
      .addError(C.InvalidPeer)
      .addError(C.InvalidPosition)
      .addError(C.CursorStoreError)
      .annotate(
        OpenApi.Summary,
        "Move many cursors at once (earliest, latest, a position, a time, a shift), backwards too; dryRun reports only"
      )
  )
  .add(
    HttpApiEndpoint.get("export", "/cursor-tools/export")
      .addSuccess(Schemas.Export)
      .addError(C.CursorStoreError)
      .annotate(OpenApi.Summary, "Every cursor of the namespace, as import reads them")
  )
  .add(
    HttpApiEndpoint.post("import", "/cursor-tools/import")
      .setPayload(ImportRequest)
      .addError(bodyErrors)
      .addSuccess(Schemas.ImportResult)
      .addError(C.InvalidPeer)
      .addError(C.InvalidPosition)
      .addError(C.CursorStoreError)
      .annotate(
        OpenApi.Summary,
        "Import cursors in one transaction (advance, or overwrite); one bad line writes nothing"
      )
  )
  .add(
    HttpApiEndpoint.post("expire", "/cursor-tools/expire")
      .setPayload(ExpireRequest)
      .addError(bodyErrors)
      .addSuccess(Schemas.ExpireResult)
      .addError(C.CursorStoreError)
      .annotate(OpenApi.Summary, "Delete cursors that have not advanced for idleForMs; dryRun lists them")
  )
  .annotate(OpenApi.Description, "Durable per-peer stream positions that never move backwards")
