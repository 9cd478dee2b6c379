/**
 * The queue's hot statements — send, lease, settle — as plans (`@keel/sql` `Plan`) and, on the
 * PostgreSQL dialect, as single autocommit statements. Rows are the tables' own, mapped by plain
 * functions (no decoding on the hot path). Callers choose the transaction each plan runs in.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as Statement from "@effect/sql/Statement"
import type { Backend } from "@keel/sql"
import * as Plan from "@keel/sql/Plan"
import * as Effect from "effect/Effect"
import type * as QueueStore from "../QueueStore.js"
import * as SqlArchive from "./sqlArchive.js"
import * as SqlInsertOne from "./sqlInsertOne.js"
import { ownColumns } from "./sqlInsertOne.js"

/** The PostgreSQL channel a queue's producers notify and its consumers listen on. */
export const channel = (queueId: number): string => `keel_queue_${queueId}`

/** A boolean as SQLite (0/1) or PostgreSQL (true/false) returns it. */
export const truthy = (value: unknown): boolean =>
  value === true || (typeof value === "number" && value !== 0)

export const unique = (values: ReadonlyArray<number>): ReadonlyArray<number> => [...new Set(values)]

/**
 * The trace column of a row, only when a message of the statement carries a trace context: with
 * tracing off no statement binds (or even names) it.
 */
const traceOf = (message: QueueStore.NewMessage) => ({ trace: message.trace ?? null })

/**
 * The condition under which message `m` may be leased as far as its group goes: it has none, or
 * it is its group's oldest message (by id) still in the queue. The one place the rule is written.
 */
export const groupHead = (sql: SqlClient.SqlClient): Statement.Fragment =>
  sql`(m.group_key IS NULL OR NOT EXISTS (
    SELECT 1 FROM keel_queue_messages g
    WHERE g.queue_id = m.queue_id AND g.group_key = m.group_key AND g.id < m.id
  ))`

/** One single send of a group: the queue's name, the message, the time it was sent. */
export interface Single {
  readonly name: string
  readonly message: QueueStore.NewMessage
  readonly now: number
}

/** A key already held: the message it holds, and whether its window is over. */
interface HeldKey {
  readonly messageId: number | null
  readonly expired: boolean
}

/** What one message of a send yields: a message this send stores (an index into its inserts) or one already stored. */
type Slot = Insert | { readonly _tag: "Stored"; readonly id: number }

interface Insert {
  readonly _tag: "Insert"
  readonly index: number
}

/** The statements of one database. */
export const make = (
  sql: SqlClient.SqlClient,
  backend: Backend.Backend,
  options: { readonly notifyInSql: boolean }
) => {
  const pg = backend.dialect === "pg"
  const forUpdate: Statement.Fragment = sql.literal(pg ? "FOR UPDATE" : "")
  const forUpdateOfMessages: Statement.Fragment = sql.literal(pg ? "FOR UPDATE OF m" : "")
  const forUpdateSkipLocked: Statement.Fragment = sql.literal(pg ? "FOR UPDATE SKIP LOCKED" : "")
  const isTrue: Statement.Fragment = sql.literal(pg ? "TRUE" : "1")
  const isFalse: Statement.Fragment = sql.literal(pg ? "FALSE" : "0")
  const limits = (parametersPerItem: number) => ({
    parameterLimit: backend.parameterLimit,
    parametersPerItem,
    fixedParameters: 8
  })

  const queueIdOf = (name: string) =>
    sql<{ id: number }>`SELECT id FROM keel_queue_queues WHERE name = ${name}`

  // ---- sends --------------------------------------------------------------------------------

  const insertOne = SqlInsertOne.make(sql, options)

  /**
   * PostgreSQL dialect, one autocommit statement for many single unkeyed sends (a group of one
   * event-loop turn), to any queues: ids are drawn from the messages' identity first, so each
   * answer is matched to its send. One answer per send, in order (undefined: no such queue). A
   * group of one is the plain single statement (`insertOne.autocommit`).
   */
  const insertMany = (items: ReadonlyArray<Single>) =>
    Effect.gen(function* () {
      const [only] = items
      if (items.length === 1 && only !== undefined)
        return [yield* insertOne.autocommit(only.name, only.message, only.now)]
      const input = JSON.stringify(
        items.map(({ name, message, now }, ord) => ({
          ord,
          queue: name,
          payload: message.payload,
          priority: message.priority,
          enqueued_at: now,
          available_at: now + message.delayMs,
          ...ownColumns(message),
          ...traceOf(message)
        }))
      )
      const notified = options.notifyInSql
        ? sql`, (SELECT COUNT(pg_notify('keel_queue_' || d.queue_id, d.name))
              FROM (SELECT DISTINCT queue_id, name FROM i) d) AS notified`
        : sql``
      const rows = yield* sql<{ ord: number; id: number; queue_id: number }>`WITH i AS MATERIALIZED (
          SELECT nextval(pg_get_serial_sequence('keel_queue_messages', 'id')) AS id,
                 t.ord, t.payload, t.priority, t.enqueued_at, t.available_at, t.max_deliveries, t.backoff,
                 t.group_key, t.trace, q.id AS queue_id, q.name
          FROM json_to_recordset(CAST(${input} AS json))
            AS t(ord INTEGER, queue TEXT, payload TEXT, priority INTEGER, enqueued_at BIGINT, available_at BIGINT,
                 max_deliveries INTEGER, backoff TEXT, group_key TEXT, trace TEXT)
          JOIN keel_queue_queues q ON q.name = t.queue
          ORDER BY t.ord
        ),
        inserted AS (
          INSERT INTO keel_queue_messages
            (id, queue_id, payload, priority, enqueued_at, available_at, max_deliveries, backoff, group_key, trace)
          SELECT id, queue_id, payload, priority, enqueued_at, available_at, max_deliveries, backoff, group_key, trace
          FROM i
          RETURNING id
        )
        SELECT i.ord, i.id, i.queue_id ${notified} FROM i JOIN inserted ON inserted.id = i.id`
      const byOrd = new Map(rows.map((row) => [Number(row.ord), row]))
      return items.map((_, ord): QueueStore.Sent | undefined => {
        const row = byOrd.get(ord)
        return row === undefined ? undefined : { queueId: Number(row.queue_id), ids: [Number(row.id)] }
      })
    })

  /**
   * Inserts messages (to any queues) in one statement per chunk; their ids in input order (ids
   * ascend in insertion order, and a statement inserts its rows in the order given).
   */
  function* insertRows(
    rows: ReadonlyArray<{
      readonly queueId: number
      readonly message: QueueStore.NewMessage
      readonly now: number
      readonly availableAt: number
    }>
  ) {
    const traced = rows.some((row) => row.message.trace !== undefined)
    const columns = rows.map(({ queueId, message, now, availableAt }) => ({
      queue_id: queueId,
      payload: message.payload,
      priority: message.priority,
      enqueued_at: now,
      available_at: availableAt,
      ...ownColumns(message),
      ...(traced ? traceOf(message) : {})
    }))
    // One bind parameter per column of a row: chunks stay under the backend's parameter limit
    // whatever columns a message carries.
    const perRow = Object.keys(columns[0] ?? {}).length
    const inserted = yield* Plan.chunked(
      columns,
      limits(perRow),
      (chunk) => sql<{ id: number }>`INSERT INTO keel_queue_messages ${sql.insert(chunk)} RETURNING id`
    )
    return inserted.map((row) => Number(row.id)).sort((a, b) => a - b)
  }

  /**
   * A plan for many single unkeyed sends (a group of one event-loop turn), to any queues: the
   * queues resolved by one read, the messages inserted by one statement per chunk. One answer per
   * send, in order (undefined: no such queue). A group of one is the plain single statement.
   */
  const insertManyPlan = (
    items: ReadonlyArray<Single>
  ): Plan.Make<ReadonlyArray<QueueStore.Sent | undefined>> =>
    function* () {
      const [only] = items
      if (items.length === 1 && only !== undefined)
        return [yield* insertOne.plan(only.name, only.message, only.now)]
      const names = [...new Set(items.map((item) => item.name))]
      const found = yield* Plan.chunked(
        names,
        limits(1),
        (chunk) => sql<{ id: number; name: string }>`SELECT id, name FROM keel_queue_queues
          WHERE ${sql.in("name", chunk)}`
      )
      const queueIds = new Map(found.map((row) => [String(row.name), Number(row.id)]))
      const stored = items.flatMap(({ name, message, now }) => {
        const queueId = queueIds.get(name)
        return queueId === undefined ? [] : [{ queueId, message, now, availableAt: now + message.delayMs }]
      })
      const ids = yield* insertRows(stored)
      let next = 0
      return items.map((item): QueueStore.Sent | undefined => {
        const queueId = queueIds.get(item.name)
        if (queueId === undefined) return undefined
        const id = ids[next++]
        if (id === undefined) throw new Error("a sent message has no id (invariant broken)")
        return { queueId, ids: [id] }
      })
    }

  /** The ids of `keys` in queue `queueId`, chunked. */
  function* selectKeys(queueId: number, keys: ReadonlyArray<string>) {
    const rows = yield* Plan.chunked(
      keys,
      limits(1),
      (chunk) => sql<{ dedup_key: string; message_id: number | null }>`SELECT dedup_key, message_id
        FROM keel_queue_dedup_keys WHERE queue_id = ${queueId} AND ${sql.in("dedup_key", chunk)}`
    )
    return new Map(
      rows.map((row) => [String(row.dedup_key), row.message_id === null ? null : Number(row.message_id)])
    )
  }

  /** The ids of messages sent, from their keys or what was inserted; a missing one is a broken invariant. */
  const idsOf = (
    messages: ReadonlyArray<QueueStore.NewMessage>,
    inserted: ReadonlyArray<number | undefined>,
    known: ReadonlyMap<string, number | null>
  ): ReadonlyArray<number> =>
    messages.map((message, index) => {
      const id = inserted[index] ?? (message.dedupKey === undefined ? undefined : known.get(message.dedupKey))
      if (id === undefined || id === null) throw new Error("a sent message has no id (invariant broken)")
      return id
    })

  /** The keys of `keys` already held in queue `queueId`, locked on PostgreSQL: what each holds and whether its window is over. */
  function* heldKeys(queueId: number, keys: ReadonlyArray<string>, now: number) {
    const rows = yield* Plan.chunked(
      keys,
      limits(1),
      (chunk) => sql<{
        dedup_key: string
        message_id: number | null
        expires_at: number | null
      }>`SELECT dedup_key, message_id, expires_at FROM keel_queue_dedup_keys
        WHERE queue_id = ${queueId} AND ${sql.in("dedup_key", chunk)} ${forUpdate}`
    )
    return new Map(
      rows.map((row): readonly [string, HeldKey] => [
        String(row.dedup_key),
        {
          messageId: row.message_id === null ? null : Number(row.message_id),
          expired: row.expires_at !== null && Number(row.expires_at) <= now
        }
      ])
    )
  }

  /**
   * Replaces message `id` (payload, priority; with `debounce` its availability) if it is queued and
   * not leased; its deliveries start over. True when it was replaced.
   */
  function* replace(queueId: number, id: number, message: QueueStore.NewMessage, now: number) {
    const availableAt = message.dedupMode === "debounce" ? sql`${now + message.delayMs}` : sql`available_at`
    const policy = ownColumns(message)
    const rows = yield* Plan.rows(sql<{ id: number }>`UPDATE keel_queue_messages
      SET payload = ${message.payload}, priority = ${message.priority}, available_at = ${availableAt},
          max_deliveries = ${policy.max_deliveries}, backoff = ${policy.backoff}, group_key = ${policy.group_key},
          trace = ${message.trace ?? null}, deliveries = 0, lease_token = NULL, leased_by = NULL, leased_at = NULL, last_error = NULL
      WHERE id = ${id} AND queue_id = ${queueId} AND (lease_token IS NULL OR available_at <= ${now})
      RETURNING id`)
    return rows.length > 0
  }

  /**
   * Sends messages in input order, as if sent one after another. New keys are claimed first
   * (insert-or-ignore, sorted so two batches never deadlock); the keys already held are read (and
   * locked) once. A message whose key is held follows its `dedupMode`; a key whose window is over
   * is claimed again. Then every message to store is inserted in one statement per chunk, and the
   * keys are pointed at their messages. Undefined when the queue does not exist.
   */
  const sendPlan = (
    name: string,
    messages: ReadonlyArray<QueueStore.NewMessage>,
    now: number
  ): Plan.Make<QueueStore.Sent | undefined> =>
    function* () {
      const first = messages[0]
      if (messages.length === 1 && first !== undefined && first.dedupKey === undefined) {
        return yield* insertOne.plan(name, first, now)
      }
      const [queue] = yield* Plan.rows(queueIdOf(name))
      if (queue === undefined) return undefined
      const queueId = Number(queue.id)
      // The window of a key claimed here is that of its first message.
      const windows = new Map<string, number | undefined>()
      for (const message of messages) {
        if (message.dedupKey !== undefined && !windows.has(message.dedupKey))
          windows.set(message.dedupKey, message.dedupWindowMs)
      }
      const keys = [...windows.keys()].sort()
      const fresh = new Set(
        (yield* Plan.chunked(
          keys,
          limits(4),
          (chunk) =>
            sql<{ dedup_key: string }>`INSERT INTO keel_queue_dedup_keys ${sql.insert(
              chunk.map((key) => {
                const window = windows.get(key)
                return {
                  queue_id: queueId,
                  dedup_key: key,
                  created_at: now,
                  expires_at: window === undefined ? null : now + window
                }
              })
            )} ON CONFLICT (queue_id, dedup_key) DO NOTHING RETURNING dedup_key`
        )).map((row) => String(row.dedup_key))
      )
      const held =
        keys.length === fresh.size
          ? new Map<string, HeldKey>()
          : yield* heldKeys(
              queueId,
              keys.filter((key) => !fresh.has(key)),
              now
            )
      // What each message yields: a message stored by this send (an index into `toInsert`) or one already stored.
      const toInsert: Array<{ message: QueueStore.NewMessage; availableAt: number }> = []
      const slots: Array<Slot> = []
      const holders = new Map<string, Slot>()
      // Keys to point at a message stored here: claimed by this send, or claimed again (a new window).
      const claims: Array<{
        readonly key: string
        readonly index: number
        readonly again: boolean
        readonly windowMs: number | undefined
      }> = []
      const store = (message: QueueStore.NewMessage, claim?: { key: string; again: boolean }): Insert => {
        toInsert.push({ message, availableAt: now + message.delayMs })
        const index = toInsert.length - 1
        if (claim !== undefined) claims.push({ ...claim, index, windowMs: message.dedupWindowMs })
        return { _tag: "Insert", index }
      }
      for (const message of messages) {
        const key = message.dedupKey
        if (key === undefined) {
          slots.push(store(message))
          continue
        }
        const heldKey = held.get(key)
        const holder: Slot | undefined =
          holders.get(key) ??
          (heldKey === undefined || heldKey.expired || heldKey.messageId === null
            ? undefined
            : { _tag: "Stored", id: heldKey.messageId })
        let slot: Slot
        if (holder === undefined) slot = store(message, { key, again: !fresh.has(key) })
        else if (message.dedupMode === "ignore") slot = holder
        else if (holder._tag === "Insert") {
          const pending = toInsert[holder.index]
          if (pending !== undefined) {
            pending.message = message
            if (message.dedupMode === "debounce") pending.availableAt = now + message.delayMs
          }
          slot = holder
        } else if (yield* replace(queueId, holder.id, message, now)) slot = holder
        else slot = store(message, { key, again: true })
        holders.set(key, slot)
        slots.push(slot)
      }
      const ids = yield* insertRows(
        toInsert.map(({ message, availableAt }) => ({ queueId, message, now, availableAt }))
      )
      if (options.notifyInSql && ids.length > 0)
        yield* Plan.run(sql`SELECT pg_notify(${channel(queueId)}, ${name})`)
      const idOf = (slot: Slot): number => {
        const id = slot._tag === "Stored" ? slot.id : ids[slot.index]
        if (id === undefined) throw new Error("a sent message has no id (invariant broken)")
        return id
      }
      // Keys claimed here point at their messages (one statement per chunk); keys claimed again
      // restart their window (one upsert each: a key purged meanwhile is recorded again).
      yield* Plan.chunked(
        claims.filter((claim) => !claim.again),
        limits(3),
        (chunk) => sql`UPDATE keel_queue_dedup_keys
          SET message_id = CASE dedup_key ${sql.join(" ", false)(chunk.map((claim) => sql`WHEN ${claim.key} THEN CAST(${idOf({ _tag: "Insert", index: claim.index })} AS BIGINT)`))} END
          WHERE queue_id = ${queueId} AND ${sql.in(
            "dedup_key",
            chunk.map((claim) => claim.key)
          )}`
      )
      for (const claim of claims) {
        if (!claim.again) continue
        const row = {
          queue_id: queueId,
          dedup_key: claim.key,
          message_id: idOf({ _tag: "Insert", index: claim.index }),
          created_at: now,
          expires_at: claim.windowMs === undefined ? null : now + claim.windowMs
        }
        yield* Plan.run(sql`INSERT INTO keel_queue_dedup_keys ${sql.insert(row)}
          ON CONFLICT (queue_id, dedup_key) DO UPDATE SET message_id = ${row.message_id},
            created_at = ${row.created_at}, expires_at = ${row.expires_at}`)
      }
      return { queueId, ids: slots.map(idOf) }
    }

  /** Reads back the ids of a fully keyed send (`Retry.keyed`'s read). Undefined when the queue does not exist. */
  const keyedPlan = (
    name: string,
    messages: ReadonlyArray<QueueStore.NewMessage>
  ): Plan.Make<QueueStore.Sent | undefined> =>
    function* () {
      const [queue] = yield* Plan.rows(queueIdOf(name))
      if (queue === undefined) return undefined
      const queueId = Number(queue.id)
      const keys = [...new Set(messages.flatMap((m) => (m.dedupKey === undefined ? [] : [m.dedupKey])))]
      const known = yield* selectKeys(queueId, keys)
      return { queueId, ids: idsOf(messages, [], known) }
    }

  const { archive, remove } = SqlArchive.make(sql, { isTrue, isFalse, limits })

  return {
    forUpdate,
    isTrue,
    isFalse,
    limits,
    queueIdOf,
    archive,
    remove,
    insertMany,
    insertManyPlan,
    sendPlan,
    keyedPlan,
    forUpdateOfMessages,
    forUpdateSkipLocked
  }
}

/** How an archived copy of a message is written (see `sqlArchive.ts`). */
export type { Archiving } from "./sqlArchive.js"

/** The statements of one database. */
export type Statements = ReturnType<typeof make>
