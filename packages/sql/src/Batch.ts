/**
 * Bounded batches (DESIGN.md rule 4): a batch is validated against its limit before anything is
 * written, and split into chunks that stay under the backend's bind-parameter limit.
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { Backend } from "./Backend.js"

/** A batch is larger than its operation accepts. Nothing was written. */
export class BatchTooLarge extends Schema.TaggedError<BatchTooLarge>()("BatchTooLarge", {
  size: Schema.Number,
  limit: Schema.Number
}) {
  override get message(): string {
    return `a batch of ${this.size} items exceeds the limit of ${this.limit}`
  }
}

/** Succeeds with `items` when there are at most `limit` of them; otherwise `BatchTooLarge`. */
export const validate = <A>(
  items: ReadonlyArray<A>,
  limit: number
): Effect.Effect<ReadonlyArray<A>, BatchTooLarge> =>
  items.length > limit ? Effect.fail(new BatchTooLarge({ size: items.length, limit })) : Effect.succeed(items)

/**
 * How many items fit in one statement when each binds `parametersPerItem` parameters and the
 * statement binds `fixedParameters` more. At least one.
 */
export const chunkSize = (parameterLimit: number, parametersPerItem: number, fixedParameters = 0): number =>
  Math.max(1, Math.floor((parameterLimit - fixedParameters) / Math.max(1, parametersPerItem)))

/** Splits `items` into consecutive chunks of at most `size`. */
export const chunks = <A>(items: ReadonlyArray<A>, size: number): ReadonlyArray<ReadonlyArray<A>> => {
  const out: Array<ReadonlyArray<A>> = []
  for (let start = 0; start < items.length; start += size) out.push(items.slice(start, start + size))
  return out
}

/**
 * Runs `statement` once per chunk of `items`, each chunk small enough for the current backend's
 * parameter limit, one after another, and concatenates the results. Empty input runs nothing.
 * Use it for IN-lists (`sql.in("id", chunk)`) and multi-row inserts; wrap it in a transaction
 * when the chunks must commit together.
 */
export const forEachChunk = <A, B, E, R>(
  items: ReadonlyArray<A>,
  options: { readonly parametersPerItem: number; readonly fixedParameters?: number },
  statement: (chunk: ReadonlyArray<A>) => Effect.Effect<ReadonlyArray<B>, E, R>
): Effect.Effect<ReadonlyArray<B>, E, R | Backend> =>
  items.length === 0
    ? Effect.succeed([])
    : Effect.flatMap(Backend, (backend) => {
        const size = chunkSize(
          backend.parameterLimit,
          options.parametersPerItem,
          options.fixedParameters ?? 0
        )
        return Effect.map(Effect.forEach(chunks(items, size), statement), (results) =>
          Chunk.toReadonlyArray(Chunk.flatten(Chunk.fromIterable(results.map(Chunk.fromIterable))))
        )
      })
