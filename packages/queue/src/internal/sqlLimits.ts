/**
 * The SQL of what may be leased: the ordered-group rule and the queue's limits, held in the
 * database so that they hold across processes.
 *
 * - A message of a group is leasable only while fewer than the queue's `group_concurrency` older
 *   messages of its group are still in the queue (so the oldest N of a group run at once, in send
 *   order), and, when the queue blocks groups on dead letters, no older message of its group is a
 *   dead letter in the archive.
 * - `concurrency_limit`: leases only up to the limit minus the messages leased now (lease not
 *   expired), counted under the write lock (the queue row locked on PostgreSQL).
 * - `rate_limit` per `rate_interval_ms`: windows aligned to the epoch; the current window and its
 *   count are kept in the queue row and advanced in the same transaction as the leases they count.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as Statement from "@effect/sql/Statement"
import * as Plan from "@keel/sql/Plan"
import { type Budget, budgetOf } from "./limits.js"
import { truthy } from "./sqlStatements.js"

/** A queue's settings that the lease statements need. */
export interface QueueLeaseRow {
  readonly id: number
  readonly visibility_timeout_ms: number
  readonly max_deliveries: number
  readonly concurrency_limit: number | null
  readonly rate_limit: number | null
  readonly group_concurrency: number
  readonly group_block_on_dead: unknown
  /** Something is leasable now under the default group rule (see `leaseSettings`). */
  readonly ready: unknown
}

interface LimitRow {
  readonly concurrency_limit: number | null
  readonly rate_limit: number | null
  readonly rate_interval_ms: number | null
  readonly rate_window_start: number | null
  readonly rate_window_count: number
}

/** True when the queue has a concurrency or a rate limit. */
export const limited = (queue: Pick<QueueLeaseRow, "concurrency_limit" | "rate_limit">): boolean =>
  queue.concurrency_limit !== null || queue.rate_limit !== null

/**
 * The condition under which message `m` may be leased as far as its group goes — the one place the
 * group rule is written. Fewer than the group's concurrency of its older messages may be ahead of
 * it: no older one at offset `aheadOffset` (= concurrency − 1) counting back from it; without an
 * offset, no older one at all (concurrency 1). When `blocks` (a boolean SQL expression, or
 * `"always"`), no older message of its group may be a dead letter either. Settings known when the
 * statement is built leave out what they do not need: the default rule (one at a time, dead
 * letters skipped) is a single `NOT EXISTS`, as cheap as before groups had settings. (A `COUNT`
 * over a `LIMIT` subquery would say the same but costs ~20 µs per statement on SQLite even for
 * messages without a group.)
 */
export const groupRule = (
  sql: SqlClient.SqlClient,
  isTrue: Statement.Fragment,
  rule: {
    readonly aheadOffset?: Statement.Fragment | undefined
    readonly blocks?: Statement.Fragment | "always" | undefined
  }
): Statement.Fragment => {
  const ahead =
    rule.aheadOffset === undefined ? sql`` : sql`ORDER BY g.id DESC LIMIT 1 OFFSET ${rule.aheadOffset}`
  const deadAhead = sql`NOT EXISTS (
      SELECT 1 FROM keel_queue_archive a
      WHERE a.queue_id = m.queue_id AND a.group_key = m.group_key AND a.dead = ${isTrue} AND a.id < m.id
    )`
  const dead =
    rule.blocks === undefined
      ? sql``
      : rule.blocks === "always"
        ? sql`AND ${deadAhead}`
        : sql`AND (NOT ${rule.blocks} OR ${deadAhead})`
  return sql`(m.group_key IS NULL OR (
    NOT EXISTS (
      SELECT 1 FROM keel_queue_messages g
      WHERE g.queue_id = m.queue_id AND g.group_key = m.group_key AND g.id < m.id ${ahead}
    ) ${dead}
  ))`
}

/** The limit statements of one database. */
export const make = (
  sql: SqlClient.SqlClient,
  options: { readonly forUpdate: Statement.Fragment; readonly isTrue: Statement.Fragment }
) => {
  /** The group rule of a queue with the default settings: one at a time, dead letters skipped. */
  const defaultRule = groupRule(sql, options.isTrue, {})

  /** True when the queue's group settings are the defaults, so that `leaseSettings`' `ready` holds. */
  const defaultGroups = (queue: QueueLeaseRow): boolean =>
    Number(queue.group_concurrency) === 1 && !truthy(queue.group_block_on_dead)

  /** The group rule with a queue's settings bound as values. */

  const groupRuleOf = (queue: QueueLeaseRow): Statement.Fragment => {
    if (defaultGroups(queue)) return defaultRule
    const concurrency = Number(queue.group_concurrency)
    return groupRule(sql, options.isTrue, {
      aheadOffset: concurrency === 1 ? undefined : sql`${concurrency - 1}`,
      blocks: truthy(queue.group_block_on_dead) ? "always" : undefined
    })
  }

  /** The queue's settings for a lease, by name. */
  const leaseSettings = (name: string, now: number) =>
    sql<QueueLeaseRow>`SELECT q.id, q.visibility_timeout_ms, q.max_deliveries, q.concurrency_limit,
        q.rate_limit, q.group_concurrency, q.group_block_on_dead, EXISTS (
          SELECT 1 FROM keel_queue_messages m
          WHERE m.queue_id = q.id AND m.available_at <= ${now} AND ${defaultRule}
        ) AS ready
      FROM keel_queue_queues q WHERE q.name = ${name}`

  /**
   * Whether anything is leasable now (reads that take no lock): `leaseSettings`' answer for a
   * queue with the default group settings, else one more read under the queue's own rule.
   */
  function* leasableNow(queue: QueueLeaseRow, now: number): Generator<Plan.Run, boolean, unknown> {
    if (defaultGroups(queue)) return truthy(queue.ready)
    const [row] = yield* Plan.rows(leasable(queue, now))
    return truthy(row?.ready)
  }

  /** Whether anything is leasable now (a read that takes no lock). */
  const leasable = (queue: QueueLeaseRow, now: number) =>
    sql<{ ready: unknown }>`SELECT EXISTS (
        SELECT 1 FROM keel_queue_messages m
        WHERE m.queue_id = ${queue.id} AND m.available_at <= ${now} AND ${groupRuleOf(queue)}
      ) AS ready`

  /**
   * How many of `wanted` a lease may take now under the queue's limits, read under the write lock
   * (the queue row locked on PostgreSQL, so that lessees of a limited queue take turns).
   */
  function* budget(queueId: number, wanted: number, now: number): Generator<Plan.Run, Budget, unknown> {
    const [row] = yield* Plan.rows(sql<LimitRow>`SELECT concurrency_limit, rate_limit, rate_interval_ms,
        rate_window_start, rate_window_count
      FROM keel_queue_queues WHERE id = ${queueId} ${options.forUpdate}`)
    if (row === undefined) return { qty: 0 }
    const inFlight =
      row.concurrency_limit === null
        ? []
        : yield* Plan.rows(sql<{ n: number }>`SELECT COUNT(*) AS n FROM keel_queue_messages
            WHERE queue_id = ${queueId} AND lease_token IS NOT NULL AND available_at > ${now}`)
    const nullable = (value: number | null) => (value === null ? null : Number(value))
    return budgetOf(wanted, now, {
      concurrencyLimit: nullable(row.concurrency_limit),
      inFlight: Number(inFlight[0]?.n ?? 0),
      rateLimit: nullable(row.rate_limit),
      rateIntervalMs: nullable(row.rate_interval_ms),
      window:
        row.rate_window_start === null
          ? undefined
          : { start: Number(row.rate_window_start), count: Number(row.rate_window_count) }
    })
  }

  /** Records `leased` leases in the rate window of `budget`. */
  function* spend(queueId: number, budget: Budget, leased: number): Generator<Plan.Run, void, unknown> {
    if (budget.window === undefined || leased === 0) return
    yield* Plan.run(sql`UPDATE keel_queue_queues
      SET rate_window_start = ${budget.window.start}, rate_window_count = ${budget.window.used + leased}
      WHERE id = ${queueId}`)
  }

  return { groupRuleOf, leaseSettings, leasableNow, budget, spend }
}
