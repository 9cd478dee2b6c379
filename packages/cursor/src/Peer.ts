/**
 * Peer and namespace names: who a cursor belongs to (a replica, a consumer, a consumer group) and
 * which consumer application owns a set of cursors when several share one database.
 */
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { echo, InvalidPeer } from "./CursorError.js"

/** The longest peer name accepted, in UTF-16 code units. */
export const maxPeerLength = 256

/** The longest namespace accepted, in UTF-16 code units. */
export const maxNamespaceLength = 128

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it rejects
const control = /[\u0000-\u001f\u007f]/

/** Why `value` is not a usable name of at most `limit` characters, or `undefined` when it is one. */
const problem = (value: string, limit: number): string | undefined => {
  if (value.length === 0) return "it is empty"
  if (value.length > limit) return `it is longer than ${limit} characters`
  if (control.test(value)) return "it contains control characters"
  if (value.trim() !== value) return "it starts or ends with whitespace"
  return undefined
}

/** A peer name: 1–256 characters, no control characters, no surrounding whitespace. */
export const Peer = Schema.String.pipe(
  Schema.filter((value) => problem(value, maxPeerLength)),
  Schema.brand("@keel/cursor/Peer"),
  Schema.annotations({ identifier: "Peer", description: "Who a cursor belongs to (a replica, a consumer)" })
)

/** A peer name. */
export type Peer = typeof Peer.Type

/** A namespace: 1–128 characters, no control characters, no surrounding whitespace. */
export const Namespace = Schema.String.pipe(
  Schema.filter((value) => problem(value, maxNamespaceLength)),
  Schema.brand("@keel/cursor/Namespace"),
  Schema.annotations({ identifier: "Namespace", description: "Which consumer application owns a cursor" })
)

/** A namespace. */
export type Namespace = typeof Namespace.Type

/** The namespace used when none is configured. */
export const defaultNamespace: Namespace = Namespace.make("default")

/** `value` as a `Peer`, or `InvalidPeer` saying why. */
export const parse = (value: string): Either.Either<Peer, InvalidPeer> => {
  const reason = problem(value, maxPeerLength)
  // The cast brands text `problem` has just accepted (`Peer.make` would check it twice per `set`).
  return reason === undefined
    ? Either.right(value as Peer)
    : Either.left(new InvalidPeer({ field: "peer", value: echo(value), reason }))
}

/** `value` as a `Namespace`, or `InvalidPeer` (field `namespace`) saying why. */
export const parseNamespace = (value: string): Either.Either<Namespace, InvalidPeer> => {
  const reason = problem(value, maxNamespaceLength)
  return reason === undefined
    ? Either.right(Namespace.make(value))
    : Either.left(new InvalidPeer({ field: "namespace", value: echo(value), reason }))
}
