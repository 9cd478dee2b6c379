/** @keel/cursor: a durable per-peer stream cursor store that never moves backwards. */
export * as Cursor from "./Cursor.js"
export * as CursorError from "./CursorError.js"
export * as Peer from "./Peer.js"
export * as Position from "./Position.js"
