/**
 * The queue's lease statements: taking leases (`read`) and settling them (delete, archive,
 * extend, release), as plans and, on the PostgreSQL dialect, as single autocommit statements.
 * Every settlement checks the lease under the write lock (rows locked on PostgreSQL) first.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Plan from "@keel/sql/Plan"
import * as Effect from "effect/Effect"
import * as Backoff from "../Backoff.js"
import type * as QueueStore from "../QueueStore.js"
import { exhausted, exhaustedError } from "../Schemas.js"
import { type Budget, throttledUntil } from "./limits.js"
import type { IdRow } from "./sqlInsertOne.js"
import * as Limits from "./sqlLimits.js"
import { type Statements, truthy, unique } from "./sqlStatements.js"

interface CandidateRow {
  readonly id: number
  readonly payload: string
  readonly priority: number
  readonly enqueued_at: number
  readonly deliveries: number
  readonly last_error: string | null
  /** The message's own, or (in `leaseNext`) already its queue's when it has none. */
  readonly max_deliveries: number | null
  readonly backoff: string | null
  readonly group_key: string | null
  readonly trace: string | null
}
interface LeaseStateRow {
  readonly id: number
  readonly queue_id: number
  readonly lease_token: string | null
  readonly deliveries: number
  readonly visibility_timeout_ms: number
  readonly max_deliveries: number
}
interface LeaseNextRow {
  readonly queue_id: number
  /** The queue has a concurrency or rate limit: nothing was leased (its leases take the plan). */
  readonly limited: unknown
  readonly dead: number
  readonly id: number | null
  readonly payload: string | null
  readonly priority: number | null
  readonly enqueued_at: number | null
  readonly deliveries: number | null
  readonly last_error: string | null
  readonly visible_at: number | null
  readonly max_deliveries: number | null
  readonly backoff: string | null
  readonly group_key: string | null
  readonly trace: string | null
}

/** The lease statements of one database, over its shared statements. */
export const make = (sql: SqlClient.SqlClient, statements: Statements) => {
  const { archive, remove, forUpdateOfMessages, forUpdateSkipLocked, isTrue, isFalse, limits, queueIdOf } =
    statements
  const limiter = Limits.make(sql, { forUpdate: statements.forUpdate, isTrue })
  // The PostgreSQL statement's group rule reads the queue's settings from its `q`.
  const headInStatement = Limits.groupRule(sql, isTrue, {
    aheadOffset: sql`(SELECT group_concurrency - 1 FROM q)`,
    blocks: sql`(SELECT group_block_on_dead FROM q)`
  })
  // ---- leases -------------------------------------------------------------------------------

  const toLeased = (row: CandidateRow, until: number, queueMax: number): QueueStore.LeasedRow => ({
    id: Number(row.id),
    payload: row.payload,
    priority: Number(row.priority),
    enqueuedAt: Number(row.enqueued_at),
    deliveries: Number(row.deliveries) + 1,
    visibleAt: until,
    lastError: row.last_error,
    maxDeliveries: row.max_deliveries === null ? queueMax : Number(row.max_deliveries),
    backoff: Backoff.decode(row.backoff),
    group: row.group_key,
    trace: row.trace
  })

  /**
   * Leases in one write transaction, begun only once a no-lock check found something leasable (an
   * idle read takes no write lock, so idle consumers never block producers on SQLite): as many as
   * the queue's limits allow (`sqlLimits.ts`), candidates in delivery order (locked, skipping rows
   * others hold, on PostgreSQL), the exhausted ones dead-lettered, the rest leased. Undefined when
   * the queue does not exist. Run it with `{ begin: "lazy" }`.
   */
  const leasePlan = (
    name: string,
    request: QueueStore.LeaseRequest
  ): Plan.Make<QueueStore.Leases | undefined> =>
    function* () {
      const [queue] = yield* Plan.rows(limiter.leaseSettings(name, request.now))
      if (queue === undefined) return undefined
      const { now } = request
      if (!(yield* limiter.leasableNow(queue, now))) return { leased: [], dead: 0 }
      yield* Plan.begin()
      const budget: Budget = Limits.limited(queue)
        ? yield* limiter.budget(Number(queue.id), request.qty, now)
        : { qty: request.qty }
      if (budget.qty === 0) return { leased: [], dead: 0, throttledUntil: throttledUntil(budget, 0) }
      const head = limiter.groupRuleOf(queue)
      const maxDeliveries = Number(queue.max_deliveries)
      const until = now + (request.visibilityMs ?? Number(queue.visibility_timeout_ms))
      const leased: Array<QueueStore.LeasedRow> = []
      let dead = 0
      while (leased.length < budget.qty) {
        const candidates = yield* Plan.rows(sql<CandidateRow>`SELECT m.id, m.payload, m.priority,
            m.enqueued_at, m.deliveries, m.last_error, m.max_deliveries, m.backoff, m.group_key, m.trace
          FROM keel_queue_messages m
          WHERE m.queue_id = ${queue.id} AND m.available_at <= ${now} AND ${head}
          ORDER BY m.priority, m.available_at, m.id
          LIMIT ${budget.qty - leased.length} ${forUpdateSkipLocked}`)
        if (candidates.length === 0) break
        const allowed = (c: CandidateRow) =>
          c.max_deliveries === null ? maxDeliveries : Number(c.max_deliveries)
        const spent = candidates.filter((c) => Number(c.deliveries) >= allowed(c))
        const fresh = candidates.filter((c) => Number(c.deliveries) < allowed(c))
        // Dead-lettered with the error naming the deliveries each was allowed.
        for (const max of new Set(spent.map(allowed))) {
          yield* archive(
            spent.filter((c) => allowed(c) === max).map((c) => Number(c.id)),
            { dead: true, now, error: null, fallbackError: exhaustedError(max), undo: 0 }
          )
        }
        dead += spent.length
        if (fresh.length > 0) {
          yield* Plan.chunked(
            fresh.map((c) => Number(c.id)),
            limits(1),
            (chunk) => sql`UPDATE keel_queue_messages
              SET lease_token = ${request.token}, leased_by = ${request.workerId}, leased_at = ${now},
                  available_at = ${until}, deliveries = deliveries + 1
              WHERE ${sql.in("id", chunk)}`
          )
          for (const candidate of fresh) leased.push(toLeased(candidate, until, maxDeliveries))
        }
        if (spent.length === 0) break
      }
      yield* limiter.spend(Number(queue.id), budget, leased.length)
      return { leased, dead, throttledUntil: throttledUntil(budget, leased.length) }
    }

  /**
   * PostgreSQL dialect, one autocommit statement: takes up to `limit` visible messages in delivery
   * order, skipping rows other transactions hold; dead-letters the exhausted ones and leases the
   * rest. One row per leased message, or one row with null message columns, or none (no queue).
   */
  const leaseNext = (name: string, limit: number, request: QueueStore.LeaseRequest) =>
    sql<LeaseNextRow>`WITH q AS (
        SELECT id, visibility_timeout_ms, max_deliveries, group_concurrency, group_block_on_dead,
               concurrency_limit IS NOT NULL OR rate_limit IS NOT NULL AS limited
        FROM keel_queue_queues WHERE name = ${name}
      ),
      c AS (
        SELECT m.id, m.priority, m.available_at,
               m.deliveries >= COALESCE(m.max_deliveries, (SELECT max_deliveries FROM q)) AS exhausted
        FROM keel_queue_messages m
        WHERE m.queue_id = (SELECT id FROM keel_queue_queues WHERE name = ${name})
          AND m.available_at <= ${request.now} AND NOT (SELECT limited FROM q) AND ${headInStatement}
        ORDER BY m.priority, m.available_at, m.id
        LIMIT ${limit}
        FOR UPDATE OF m SKIP LOCKED
      ),
      d AS (
        DELETE FROM keel_queue_messages m USING c
        WHERE m.id = c.id AND c.exhausted
        RETURNING m.id, m.queue_id, m.payload, m.priority, m.enqueued_at, m.deliveries, m.last_error,
                  m.max_deliveries, m.backoff, m.group_key
      ),
      a AS (
        INSERT INTO keel_queue_archive
          (id, queue_id, payload, priority, enqueued_at, deliveries, dead, last_error, archived_at,
           max_deliveries, backoff, group_key)
        SELECT d.id, d.queue_id, d.payload, d.priority, d.enqueued_at, d.deliveries, TRUE,
               COALESCE(d.last_error, CAST(${exhausted.prefix} AS TEXT) || COALESCE(d.max_deliveries, q.max_deliveries)
                        || CAST(${exhausted.suffix} AS TEXT)),
               CAST(${request.now} AS BIGINT), d.max_deliveries, d.backoff, d.group_key
        FROM d CROSS JOIN q
        RETURNING id
      ),
      u AS (
        UPDATE keel_queue_messages m
        SET lease_token = ${request.token}, leased_by = ${request.workerId},
            leased_at = CAST(${request.now} AS BIGINT),
            available_at = CAST(${request.now} AS BIGINT)
              + COALESCE(CAST(${request.visibilityMs ?? null} AS BIGINT), q.visibility_timeout_ms),
            deliveries = m.deliveries + 1
        FROM c, q
        WHERE m.id = c.id AND NOT c.exhausted
        RETURNING m.id, m.payload, m.priority, m.enqueued_at, m.deliveries - 1 AS deliveries,
                  m.last_error, m.available_at AS visible_at, c.available_at AS candidate_at,
                  COALESCE(m.max_deliveries, q.max_deliveries) AS max_deliveries, m.backoff, m.group_key,
                  m.trace
      )
      SELECT q.id AS queue_id, q.limited, (SELECT COUNT(*) FROM a) AS dead,
             u.id, u.payload, u.priority, u.enqueued_at, u.deliveries, u.last_error, u.visible_at,
             u.max_deliveries, u.backoff, u.group_key, u.trace
      FROM q LEFT JOIN u ON TRUE
      ORDER BY u.priority, u.candidate_at, u.id`

  /**
   * PostgreSQL dialect: `leaseNext` repeated only while it dead-lettered some and more are wanted,
   * as the plan's loop does. Not re-run after a failure: it may have leased messages already (they
   * come back when their visibility timeout passes, as after a consumer crash).
   */
  const leaseAlone = (name: string, request: QueueStore.LeaseRequest) =>
    Effect.gen(function* () {
      const leased: Array<QueueStore.LeasedRow> = []
      let dead = 0
      while (leased.length < request.qty) {
        const rows = yield* leaseNext(name, request.qty - leased.length, request)
        const first = rows[0]
        if (first === undefined) return undefined
        // A limited queue's leases take the plan (its limits are counted under the queue's lock).
        if (truthy(first.limited))
          return leased.length === 0 && dead === 0 ? ("limited" as const) : { leased, dead }
        for (const row of rows) {
          if (row.id === null) continue
          if (
            row.payload === null ||
            row.priority === null ||
            row.enqueued_at === null ||
            row.deliveries === null
          ) {
            return yield* Effect.dieMessage(`queue ${name}: a leased message row has null columns`)
          }
          leased.push(
            toLeased(
              {
                id: row.id,
                payload: row.payload,
                priority: row.priority,
                enqueued_at: row.enqueued_at,
                deliveries: row.deliveries,
                last_error: row.last_error,
                max_deliveries: row.max_deliveries,
                backoff: row.backoff,
                group_key: row.group_key,
                trace: row.trace
              },
              Number(row.visible_at),
              Number(row.max_deliveries)
            )
          )
        }
        dead += Number(first.dead)
        if (Number(first.dead) === 0) break
      }
      return { leased, dead }
    })

  // ---- settlements --------------------------------------------------------------------------

  /**
   * Checks, under the write lock (rows locked on PostgreSQL), which of the leases the caller still
   * holds, then acts on those — all or none when `atomic`. Undefined when the queue does not exist.
   */
  const settlePlan = (
    name: string,
    request: QueueStore.SettleRequest
  ): Plan.Make<QueueStore.Settled | undefined> =>
    function* () {
      const { now, settlement } = request
      const rows = yield* Plan.chunked(
        unique(request.leases.map((lease) => lease.id)),
        limits(1),
        (chunk) => sql<LeaseStateRow>`SELECT m.id, m.queue_id, m.lease_token, m.deliveries,
            q.visibility_timeout_ms, COALESCE(m.max_deliveries, q.max_deliveries) AS max_deliveries
          FROM keel_queue_messages m JOIN keel_queue_queues q ON q.id = m.queue_id
          WHERE q.name = ${name} AND ${sql.in("m.id", chunk)} ${forUpdateOfMessages}`
      )
      const byId = new Map(rows.map((row) => [Number(row.id), row]))
      const lost = unique(
        request.leases
          .filter((lease) => byId.get(lease.id)?.lease_token !== lease.lease)
          .map((lease) => lease.id)
      )
      const first = rows[0]
      let queueId: number
      if (first === undefined) {
        const [queue] = yield* Plan.rows(queueIdOf(name))
        if (queue === undefined) return undefined
        queueId = Number(queue.id)
      } else {
        queueId = Number(first.queue_id)
      }
      const settled = { queueId, lost, dead: [] as ReadonlyArray<number>, visibleAt: now }
      if (first === undefined || (request.atomic && lost.length > 0)) return settled
      const lostIds = new Set(lost)
      const held = rows.filter((row) => !lostIds.has(Number(row.id)))
      const heldIds = held.map((row) => Number(row.id))
      switch (settlement._tag) {
        case "Delete":
          yield* remove(heldIds)
          return settled
        case "Archive":
          yield* archive(heldIds, { dead: false, now, error: null, fallbackError: null, undo: 0 })
          return settled
        case "Extend": {
          const visibleAt = now + (settlement.visibilityMs ?? Number(first.visibility_timeout_ms))
          yield* Plan.chunked(
            heldIds,
            limits(1),
            (chunk) =>
              sql`UPDATE keel_queue_messages SET available_at = ${visibleAt} WHERE ${sql.in("id", chunk)}`
          )
          return { ...settled, visibleAt }
        }
        case "Release": {
          // With an error, a message that has had the deliveries it is allowed is dead-lettered.
          const spent = (row: LeaseStateRow) =>
            settlement.error !== null && Number(row.deliveries) >= Number(row.max_deliveries)
          const dead = held.filter(spent).map((row) => Number(row.id))
          const alive = held.filter((row) => !spent(row)).map((row) => Number(row.id))
          if (dead.length > 0) {
            yield* archive(dead, { dead: true, now, error: settlement.error, fallbackError: null, undo: 0 })
          }
          yield* Plan.chunked(
            alive,
            limits(1),
            (chunk) => sql`UPDATE keel_queue_messages
              SET lease_token = NULL, leased_by = NULL, leased_at = NULL,
                  available_at = ${now + settlement.delayMs},
                  last_error = COALESCE(${settlement.error}, last_error)
              WHERE ${sql.in("id", chunk)}`
          )
          return { ...settled, dead }
        }
      }
    }

  /**
   * PostgreSQL dialect, one autocommit statement: deletes or archives message `held.id` of the
   * named queue if its lease token is still `held.lease` (the row is locked and the condition
   * re-checked on its newest version, so a lease that moved on concurrently is never acted on).
   * No row: the lease is lost, or the queue is gone (then undefined).
   */
  const ackAlone = (name: string, held: QueueStore.HeldLease, action: "Delete" | "Archive", now: number) =>
    Effect.gen(function* () {
      const matched = sql`DELETE FROM keel_queue_messages
        WHERE id = ${held.id} AND lease_token = ${held.lease}
          AND queue_id = (SELECT id FROM keel_queue_queues WHERE name = ${name})`
      const rows =
        action === "Delete"
          ? yield* sql<IdRow>`${matched} RETURNING id, queue_id`
          : yield* sql<IdRow>`WITH moved AS (
                ${matched}
                RETURNING id, queue_id, payload, priority, enqueued_at, deliveries, last_error,
                          max_deliveries, backoff
              )
              INSERT INTO keel_queue_archive
                (id, queue_id, payload, priority, enqueued_at, deliveries, dead, last_error, archived_at,
                 max_deliveries, backoff)
              SELECT id, queue_id, payload, priority, enqueued_at, deliveries, ${isFalse}, last_error,
                     CAST(${now} AS BIGINT), max_deliveries, backoff
              FROM moved
              RETURNING id, queue_id`
      const row = rows[0]
      if (row !== undefined) return { queueId: Number(row.queue_id), lost: [], dead: [], visibleAt: now }
      const [queue] = yield* queueIdOf(name)
      return queue === undefined
        ? undefined
        : { queueId: Number(queue.id), lost: [held.id], dead: [], visibleAt: now }
    })

  /**
   * PostgreSQL dialect, one autocommit statement for many single-lease deletes or archives (a
   * group of one event-loop turn): each message is acted on if its lease token is still the one
   * given, exactly as `ackAlone` does for one. One answer per lease, in order: settled, lost, or
   * undefined (no such queue). A group of one is the plain single statement (`ackAlone`).
   */
  const ackMany = (
    action: "Delete" | "Archive",
    items: ReadonlyArray<{ readonly name: string; readonly held: QueueStore.HeldLease; readonly now: number }>
  ) =>
    Effect.gen(function* () {
      const [only] = items
      if (items.length === 1 && only !== undefined)
        return [yield* ackAlone(only.name, only.held, action, only.now)]
      const input = JSON.stringify(
        items.map((item, ord) => ({
          ord,
          queue: item.name,
          id: item.held.id,
          lease: item.held.lease,
          now: item.now
        }))
      )
      const moved = sql`DELETE FROM keel_queue_messages m USING i, keel_queue_queues q
        WHERE m.id = i.id AND m.lease_token = i.lease AND q.name = i.queue AND m.queue_id = q.id
        RETURNING m.id, m.queue_id, m.payload, m.priority, m.enqueued_at, m.deliveries, m.last_error,
                  m.max_deliveries, m.backoff, i.now`
      const rows = yield* sql<{
        ord: number
        acted: number | null
        queue_id: number | null
      }>`WITH i AS MATERIALIZED (
          SELECT * FROM json_to_recordset(CAST(${input} AS json))
            AS t(ord INTEGER, queue TEXT, id BIGINT, lease TEXT, now BIGINT)
        ),
        moved AS (${moved}),
        archived AS (
          INSERT INTO keel_queue_archive
            (id, queue_id, payload, priority, enqueued_at, deliveries, dead, last_error, archived_at,
             max_deliveries, backoff)
          SELECT id, queue_id, payload, priority, enqueued_at, deliveries, ${isFalse}, last_error, now,
                 max_deliveries, backoff
          FROM moved WHERE ${action === "Archive" ? isTrue : isFalse}
          RETURNING id
        )
        SELECT i.ord, moved.id AS acted, q.id AS queue_id
        FROM i LEFT JOIN moved ON moved.id = i.id LEFT JOIN keel_queue_queues q ON q.name = i.queue
        ORDER BY i.ord`
      const byOrd = new Map(rows.map((row) => [Number(row.ord), row]))
      return items.map((item, ord): QueueStore.Settled | undefined => {
        const row = byOrd.get(ord)
        if (row === undefined || row.queue_id === null) return undefined
        return {
          queueId: Number(row.queue_id),
          lost: row.acted === null ? [item.held.id] : [],
          dead: [],
          visibleAt: item.now
        }
      })
    })

  return { leasePlan, leaseAlone, settlePlan, ackMany }
}
