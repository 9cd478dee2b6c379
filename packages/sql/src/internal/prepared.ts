/**
 * Named prepared statements on PostgreSQL, for the statements a connection runs again and again.
 *
 * `@effect/sql-pg` sends every statement unnamed, and PostgreSQL parses and plans an unnamed
 * statement on every run: for the queue's single send (an `INSERT … SELECT` in a CTE with
 * `pg_notify`) planning is ~0.1 ms of a ~0.3 ms round trip. node-postgres keeps a named statement
 * parsed per connection and sends only Bind/Execute after the first run, and PostgreSQL keeps its
 * plan. This wraps `query` of one pool client, at this one place (a driver boundary): a
 * parameterised text the connection has run before gets a name on its second run.
 *
 * - Only `query(text, values, callback)` with 1 to `maxNamedParameters` values and a text of at most
 *   `maxNamedLength` characters is named (what `@effect/sql-pg` sends for a statement): a bulk
 *   statement's plan is large and its planning small beside its work; config objects, cursors and
 *   parameterless text pass through.
 * - At most `maxNamed` texts are named per connection (statements whose text varies with their
 *   input, such as `IN (…)` lists, must not fill the server's memory); the counts of texts not yet
 *   named are forgotten past `maxCounted`.
 * - A named statement the server no longer has (`26000`, e.g. `DISCARD ALL` by a pooler) or whose
 *   cached plan is stale (`0A000`, after a table's columns changed) fails that once, as the server
 *   reports it, and the text is prepared again under a new name on its next run.
 * - Off with `?prepare=false` in the DSN, for poolers that do not keep prepared statements per
 *   client (PgBouncer in transaction mode before 1.21), as graphile-worker's `noPreparedStatements`.
 */
import type pg from "pg"
import { classify } from "../DbError.js"

/** How many texts one connection names at most. */
export const maxNamed = 200
/** How many unnamed texts one connection counts before forgetting the counts. */
export const maxCounted = 2_000
/** The most parameters a named statement has (a single send has 9, a reservation 11). */
export const maxNamedParameters = 32
/** The longest text that is named, in characters. */
export const maxNamedLength = 8_192

/** Errors after which a named statement is prepared again under a new name. */
const staleCodes: ReadonlySet<string> = new Set(["26000", "0A000"])

type Callback = (error: Error | null, result: unknown) => void

/** Makes `client` name the parameterised statements it runs more than once (see the module comment). */
export const prepareRepeated = (client: pg.PoolClient): void => {
  const named = new Map<string, string>()
  const counted = new Map<string, number>()
  let sequence = 0
  // The driver's own method, overloaded many ways; called with the arguments it was given.
  const query = client.query.bind(client) as (...args: ReadonlyArray<unknown>) => unknown
  const nameOf = (text: string): string | undefined => {
    const name = named.get(text)
    if (name !== undefined || named.size >= maxNamed) return name
    const seen = (counted.get(text) ?? 0) + 1
    if (seen < 2) {
      if (counted.size >= maxCounted) counted.clear()
      counted.set(text, seen)
      return undefined
    }
    counted.delete(text)
    const fresh = `keel_${++sequence}`
    named.set(text, fresh)
    return fresh
  }
  const prepared = (...args: ReadonlyArray<unknown>): unknown => {
    const [text, values, callback] = args
    if (
      args.length !== 3 ||
      typeof text !== "string" ||
      !Array.isArray(values) ||
      values.length === 0 ||
      values.length > maxNamedParameters ||
      text.length > maxNamedLength ||
      typeof callback !== "function"
    ) {
      return query(...args)
    }
    const name = nameOf(text)
    if (name === undefined) return query(text, values, callback)
    const done: Callback = (error, result) => {
      if (error !== null && staleCodes.has(classify(error).code) && named.get(text) === name) {
        named.delete(text)
        counted.set(text, 1)
      }
      ;(callback as Callback)(error, result)
    }
    return query({ name, text, values }, done)
  }
  Object.defineProperty(client, "query", { value: prepared, configurable: true, writable: true })
}
