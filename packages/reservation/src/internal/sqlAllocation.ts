/**
 * The allocation transaction as a plan: read the key's reservations, check the sticky labels,
 * choose the ports (`Allocator.choose`, with the lowest free port found by SQL), write.
 *
 * A port whose occupancy is unknown is not probed here (a plan does not wait): the plan answers
 * `Probe` and the store probes under the lock and runs it again (`SqlReservationStore.ts`). With
 * `prephase` (run with `{ begin: "lazy" }`) the plan first decides without a transaction and, when
 * that decision needs a probe, answers before BEGIN having locked nothing; otherwise it begins,
 * takes the lock and decides again from the database as it is now — only that is written.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as Statement from "@effect/sql/Statement"
import * as Plan from "@keel/sql/Plan"
import * as Allocator from "../Allocator.js"
import { inRange, type Port, type PortRange } from "../Port.js"
import { NoPortAvailable, PreferredPortReserved, StickyFieldChanged } from "../ReservationError.js"
import {
  type Allocated,
  type Allocation,
  choiceOf,
  type Known,
  type Stored,
  untagged,
  type Want
} from "../ReservationStore.js"
import type { Outcome } from "../Schemas.js"

/** A dry run's result, carried out of its plan by an abort so that its writes roll back. */
export class DryRun {
  readonly _tag = "DryRun"
  constructor(readonly allocated: Allocated) {}
}

/** Every way the plan aborts. */
export type Aborted = StickyFieldChanged | NoPortAvailable | PreferredPortReserved | DryRun

type Decision =
  | { readonly _tag: "Probe"; readonly ports: ReadonlyArray<Port> }
  | { readonly _tag: "Refused"; readonly error: StickyFieldChanged | NoPortAvailable | PreferredPortReserved }
  | {
      readonly _tag: "Write"
      readonly existing: ReadonlyMap<string, Stored>
      readonly placing: ReadonlyArray<Want>
      readonly assigned: ReadonlyMap<string, Port>
    }

/**
 * The labels a written row carries: the requested ones; where none is requested, an existing
 * reservation's own (a moved one too) and a new one's guess — a guess never replaces a stored label.
 */
const labelsOf = (a: Allocation, previous: Stored | undefined): Pick<Stored, "project" | "task"> => ({
  project: a.project ?? (previous === undefined ? a.guess.project : previous.project) ?? null,
  task: a.task ?? (previous === undefined ? a.guess.task : previous.task) ?? null
})

/** What the plan shares with the rest of the store. */
export interface Parts {
  readonly parameterLimit: number
  readonly columns: Statement.Fragment
  /**
   * On PostgreSQL and PGlite: the allocation lock, the lock of `path` (a release of that path takes
   * it too) and the read of the request's own rows as ONE statement, whose read sees everything
   * committed before the locks were granted. Undefined where BEGIN IMMEDIATE already excludes every
   * other writer (the SQLite dialect): the own rows are read plainly.
   */
  readonly lockedOwn: ((path: string, tags: ReadonlyArray<string>) => Statement.Statement<Stored>) | undefined
  /**
   * Where the backend keeps it as a function (PostgreSQL, PGlite): the lowest port of `range` no
   * live reservation holds, for a request that holds nothing of its own and avoids no span of the
   * range — the same answer as `lowestFree`, without planning a statement every time.
   */
  readonly lowestFreeLive:
    | ((range: PortRange, now: number) => Statement.Statement<{ port: number | null }>)
    | undefined
}

/** Whether `span` covers any port of `range`. */
const touches = (range: PortRange, span: Allocator.Span): boolean =>
  span.max >= range.min && span.min <= range.max

/**
 * The service of a request whose choice is exactly the lowest free port of its range when the key
 * holds no reservation yet: one service, no preferred port, no offset, no excluded span inside the
 * range, occupancy not checked, not a dry run (the plan's `lowestFreeLive` case, decided before any
 * statement). Undefined for every other request.
 */
export const lowestFreeOnly = (a: Allocation): Want | undefined => {
  const [want] = a.wants
  if (want === undefined || a.wants.length !== 1) return undefined
  if (want.preferred !== undefined || want.offset !== undefined) return undefined
  if (a.checkOccupancy || a.dryRun) return undefined
  return a.exclude.some((span) => touches(a.range, span)) ? undefined : want
}

/** The labels of a new reservation: the requested ones, else the guessed ones. */
export const newLabels = (a: Allocation): Pick<Stored, "project" | "task"> => labelsOf(a, undefined)

/** The allocation plan over `sql`. */
export const make = (sql: SqlClient.SqlClient, parts: Parts) => {
  const { columns, lockedOwn, lowestFreeLive } = parts
  const joinSpaced = sql.join(" ", false, "")

  // The statements of the common request (one service, nothing of its own held or nothing
  // excluded from its range) as templates of their values, hoisted here: on better-sqlite3 each is
  // compiled once and bound per run (`Plan.each`), so the allocation's lock is not held while SQL
  // text is built and compiled. Every value is bound once, so a value used twice is passed twice.

  /** The request's own reservation of one tag. */
  const ownRow = (path: string, tag: string) =>
    sql<Stored>`SELECT ${columns} FROM keel_reservations WHERE path = ${path} AND tag = ${tag}`

  /** `lowestFree` over every live reservation, for a range no avoided span touches. */
  const lowestFreeOfLive = (
    start: number,
    min: number,
    below: number,
    now: number,
    max: number,
    low: number,
    high: number,
    at: number
  ) =>
    sql<{ port: number | null }>`SELECT MIN(c) AS port FROM (
        SELECT CAST(${start} AS INTEGER) AS c
        UNION ALL SELECT port + 1 FROM keel_reservations
          WHERE port >= ${min} AND port < ${below} AND (expires_at IS NULL OR expires_at > ${now})
      ) candidates
      WHERE c <= ${max}
        AND c NOT IN (SELECT port FROM keel_reservations
          WHERE port BETWEEN ${low} AND ${high} AND (expires_at IS NULL OR expires_at > ${at}))`

  /** How `write`'s insert takes over the row of a chosen port (when expired: see there). */
  const takeOver = sql`ON CONFLICT (port) DO UPDATE SET path = excluded.path, tag = excluded.tag,
    project = excluded.project, task = excluded.task, created_at = excluded.created_at,
    last_used_at = excluded.last_used_at, ttl_ms = excluded.ttl_ms, expires_at = excluded.expires_at`

  /** `write`'s insert of one row (see there). */
  const insertRow = (
    path: string,
    tag: string,
    port: number,
    project: string | null,
    task: string | null,
    createdAt: number,
    lastUsedAt: number,
    ttlMs: number | null,
    expiresAt: number | null,
    now: number
  ) =>
    sql<{ port: number }>`INSERT INTO keel_reservations
        (path, tag, port, project, task, created_at, last_used_at, ttl_ms, expires_at)
      VALUES (${path}, ${tag}, ${port}, ${project}, ${task}, ${createdAt}, ${lastUsedAt}, ${ttlMs}, ${expiresAt})
      ${takeOver} WHERE keel_reservations.expires_at IS NOT NULL AND keel_reservations.expires_at <= ${now}
      RETURNING port`

  /** `write`'s refresh of a reservation the request already holds. */
  const refreshRow = (
    lastUsedAt: number,
    ttlMs: number | null,
    expiresAt: number | null,
    project: string | null,
    task: string | null,
    path: string,
    tag: string
  ) =>
    sql`UPDATE keel_reservations SET
        last_used_at = ${lastUsedAt}, ttl_ms = ${ttlMs}, expires_at = ${expiresAt},
        project = ${project}, task = ${task}
      WHERE path = ${path} AND tag = ${tag}`

  /**
   * The lowest port of `range` that no row `taken` holds and no span of `avoid` covers: it is the
   * range's start or the port after a held or avoided one, so only those are candidates.
   */
  const lowestFree = (range: PortRange, avoid: ReadonlyArray<Allocator.Span>, taken: Statement.Fragment) => {
    const spans = avoid.filter((span) => touches(range, span))
    const after = spans
      .filter((span) => span.max < range.max)
      .map((span) => sql`UNION ALL SELECT CAST(${span.max + 1} AS INTEGER)`)
    const outside = spans.map((span) => sql`NOT (c BETWEEN ${span.min} AND ${span.max})`)
    return sql<{ port: number | null }>`SELECT MIN(c) AS port FROM (
        SELECT CAST(${range.min} AS INTEGER) AS c
        UNION ALL SELECT port + 1 FROM keel_reservations
          WHERE port >= ${range.min} AND port < ${range.max} AND ${taken}
        ${joinSpaced(after)}
      ) candidates
      WHERE c <= ${range.max} AND ${sql.and(outside)}
        AND c NOT IN (SELECT port FROM keel_reservations
          WHERE port BETWEEN ${range.min} AND ${range.max} AND ${taken})`
  }

  /** The request's own rows, read now. */
  function* ownRows(a: Allocation): Generator<Plan.Instruction<never>, ReadonlyArray<Stored>, unknown> {
    const [only] = a.wants
    if (only !== undefined && a.wants.length === 1) return yield* Plan.bound(ownRow, [a.path, only.tag])
    return yield* Plan.rows(
      sql<Stored>`SELECT ${columns} FROM keel_reservations
        WHERE path = ${a.path} AND ${sql.in(
          "tag",
          a.wants.map((want) => want.tag)
        )}`
    )
  }

  /** Takes the allocation's locks, where the backend needs them, and reads the request's own rows. */
  function* lockAndReadOwn(
    a: Allocation
  ): Generator<Plan.Instruction<never>, ReadonlyArray<Stored>, unknown> {
    if (lockedOwn === undefined) return yield* ownRows(a)
    return yield* Plan.rows(
      lockedOwn(
        a.path,
        a.wants.map((want) => want.tag)
      )
    )
  }

  function* decide(
    a: Allocation,
    probed: ReadonlyMap<number, boolean>,
    now: number,
    own?: ReadonlyArray<Stored>
  ): Generator<Plan.Instruction<never>, Decision, unknown> {
    const existing = new Map((own ?? (yield* ownRows(a))).map((row) => [row.tag, row] as const))
    if (!a.force) {
      for (const row of existing.values()) {
        for (const field of ["project", "task"] as const) {
          const requested = a[field]
          if (field === "project" ? a.allowProjectChange : a.allowTaskChange) continue
          if (requested !== undefined && requested !== row[field]) {
            return {
              _tag: "Refused",
              error: new StickyFieldChanged({
                path: row.path,
                tag: row.tag === untagged ? null : row.tag,
                field,
                current: row[field],
                requested
              })
            }
          }
        }
      }
    }
    const placing = a.wants.filter((want) => {
      const row = existing.get(want.tag)
      return (
        row === undefined ||
        ((a.force || a.move) && want.preferred !== undefined && want.preferred !== Number(row.port))
      )
    })
    if (placing.length === 0) return { _tag: "Write", existing, placing, assigned: new Map() }
    const placingTags = placing.map((want) => want.tag)
    const kept = [...existing.keys()].filter((tag) => !placingTags.includes(tag))
    // Taken: every live reservation, and this request's own kept reservations even when expired;
    // the reservations this request moves free their ports.
    // With no reservation of its own (the common case) that is every live reservation: a simpler
    // condition, which PostgreSQL plans in a fraction of the time (it re-plans every statement).
    // Built once, when a statement first needs it (the common request's statements are templates).
    let takenFragment: Statement.Fragment | undefined
    const taken = (): Statement.Fragment => {
      if (takenFragment !== undefined) return takenFragment
      const live = sql`(expires_at IS NULL OR expires_at > ${now})`
      takenFragment =
        existing.size === 0
          ? live
          : sql`((path = ${a.path} AND ${sql.in("tag", kept)}) OR (NOT (path = ${a.path} AND ${sql.in("tag", [...existing.keys()])}) AND ${live}))`
      return takenFragment
    }
    const holders: Allocator.Holders<Plan.Instruction<never>> = {
      *isTaken(port) {
        const rows = yield* Plan.rows(
          sql<{ port: number }>`SELECT port FROM keel_reservations WHERE port = ${port} AND ${taken()}`
        )
        return rows.length > 0
      },
      *takenIn(range) {
        const rows = yield* Plan.rows(
          sql<{ port: number }>`SELECT port FROM keel_reservations
            WHERE port BETWEEN ${range.min} AND ${range.max} AND ${taken()}`
        )
        return new Set(rows.map((row) => Number(row.port)))
      },
      *lowestFree(range, avoid) {
        const plain = existing.size === 0 && !avoid.some((span) => touches(range, span))
        let rows: ReadonlyArray<{ port: number | null }>
        if (!plain) rows = yield* Plan.rows(lowestFree(range, avoid, taken()))
        else if (lowestFreeLive !== undefined) rows = yield* Plan.rows(lowestFreeLive(range, now))
        else
          rows = yield* Plan.bound(lowestFreeOfLive, [
            range.min,
            range.min,
            range.max,
            now,
            range.max,
            range.min,
            range.max,
            now
          ])
        const port = rows[0]?.port
        return port === null || port === undefined ? undefined : inRange(range, Number(port))
      }
    }
    const chosen = yield* Allocator.choose(choiceOf(a, placing, probed), holders)
    switch (chosen._tag) {
      case "Probe":
        return chosen
      case "Placed":
        return { _tag: "Write", existing, placing, assigned: chosen.assigned }
      case "Exhausted":
        return {
          _tag: "Refused",
          error: new NoPortAvailable({
            path: a.path,
            tag: chosen.key === untagged ? null : chosen.key,
            range: { min: a.range.min, max: a.range.max },
            requested: placing.length
          })
        }
      case "PreferredTaken": {
        const [holder] = yield* Plan.rows(
          sql<{
            path: string
            tag: string
          }>`SELECT path, tag FROM keel_reservations WHERE port = ${chosen.port}`
        )
        return {
          _tag: "Refused",
          error: new PreferredPortReserved({
            port: chosen.port,
            holderPath: holder?.path ?? "",
            holderTag: holder === undefined || holder.tag === untagged ? null : holder.tag
          })
        }
      }
    }
  }

  function* write(
    a: Allocation,
    decision: Extract<Decision, { _tag: "Write" }>,
    now: number
  ): Generator<Plan.Instruction<never>, Allocated, unknown> {
    const { existing, placing, assigned } = decision
    const written = new Map<string, { readonly row: Stored; readonly outcome: Outcome }>()
    if (placing.length > 0) {
      // Moved reservations leave their old ports first, so that another service of this request
      // may take one of them; expired reservations of others give up the chosen ports.
      const moving = placing.map((want) => want.tag).filter((tag) => existing.has(tag))
      if (moving.length > 0) {
        yield* Plan.run(
          sql`DELETE FROM keel_reservations WHERE path = ${a.path} AND ${sql.in("tag", moving)}`
        )
      }
      const rows: Array<Stored> = []
      for (const want of placing) {
        const port = assigned.get(want.tag)
        if (port === undefined) continue
        const previous = existing.get(want.tag)
        const row: Stored = {
          path: a.path,
          tag: want.tag,
          port,
          ...labelsOf(a, previous),
          created_at: previous === undefined ? now : Number(previous.created_at),
          last_used_at: now,
          ttl_ms: a.ttlMs ?? null,
          expires_at: a.ttlMs === undefined ? null : now + a.ttlMs
        }
        rows.push(row)
        written.set(want.tag, { row, outcome: previous === undefined ? "created" : "moved" })
      }
      // An expired reservation of another key that holds a chosen port gives it up: its row is
      // taken over in the same statement. A live holder (impossible under the allocation's lock)
      // keeps its row; the insert is then retried plainly and fails on the port's uniqueness.
      const [one] = rows
      const inserted = new Set(
        (rows.length === 1 && one !== undefined
          ? yield* Plan.bound(insertRow, [
              one.path,
              one.tag,
              one.port,
              one.project,
              one.task,
              one.created_at,
              one.last_used_at,
              one.ttl_ms,
              one.expires_at,
              now
            ])
          : yield* Plan.rows(
              sql<{ port: number }>`INSERT INTO keel_reservations ${sql.insert(rows)}
            ${takeOver} WHERE keel_reservations.expires_at IS NOT NULL AND keel_reservations.expires_at <= ${now}
            RETURNING port`
            )
        ).map((row) => Number(row.port))
      )
      const refused = rows.filter((row) => !inserted.has(row.port))
      if (refused.length > 0) yield* Plan.run(sql`INSERT INTO keel_reservations ${sql.insert(refused)}`)
    }
    for (const want of a.wants) {
      const previous = existing.get(want.tag)
      if (previous === undefined || written.has(want.tag)) continue
      const ttl = a.ttlMs ?? (previous.ttl_ms === null ? null : Number(previous.ttl_ms))
      const row: Stored = {
        ...previous,
        last_used_at: now,
        ttl_ms: ttl,
        expires_at: ttl === null ? null : now + ttl,
        ...labelsOf(a, previous)
      }
      yield* Plan.bound(refreshRow, [
        row.last_used_at,
        row.ttl_ms,
        row.expires_at,
        row.project,
        row.task,
        row.path,
        row.tag
      ])
      written.set(want.tag, { row, outcome: "refreshed" })
    }
    return {
      _tag: "Allocated",
      reservations: a.wants.flatMap((want) => {
        const entry = written.get(want.tag)
        return entry === undefined ? [] : [entry]
      })
    }
  }

  /**
   * On exhaustion, in the allocation's transaction: removes reservations unused for
   * `expireUnusedMs` and those of the paths found missing (never this request's own). True when
   * something was removed, so choosing again may succeed.
   */
  function* reclaim(
    a: Allocation,
    missing: ReadonlySet<string> | undefined,
    now: number
  ): Generator<Plan.Instruction<never>, boolean, unknown> {
    let removed = 0
    const notOwn = sql`NOT (path = ${a.path} AND ${sql.in(
      "tag",
      a.wants.map((want) => want.tag)
    )})`
    if (a.expireUnusedMs !== undefined) {
      const rows = yield* Plan.rows(
        sql<{ port: number }>`DELETE FROM keel_reservations
          WHERE last_used_at <= ${now - a.expireUnusedMs} AND ${notOwn} RETURNING port`
      )
      removed += rows.length
    }
    if (a.prune && missing !== undefined && missing.size > 0) {
      const rows = yield* Plan.chunked(
        [...missing],
        { parameterLimit: parts.parameterLimit, parametersPerItem: 1, fixedParameters: 1 + a.wants.length },
        (paths) =>
          sql<{
            port: number
          }>`DELETE FROM keel_reservations WHERE ${sql.in("path", paths)} AND ${notOwn} RETURNING port`
      )
      removed += rows.length
    }
    return removed > 0
  }

  /** The plan of one allocation attempt (see the module comment). */
  return (a: Allocation, known: Known, now: number, prephase: boolean): Plan.Make<Allocated, Aborted> =>
    function* () {
      if (prephase) {
        const first = yield* decide(a, known.probed, now)
        if (first._tag === "Probe") return first
        yield* Plan.begin()
      }
      let decision = yield* decide(a, known.probed, now, yield* lockAndReadOwn(a))
      const exhausted = decision._tag === "Refused" && decision.error._tag === "NoPortAvailable"
      if (exhausted && (a.expireUnusedMs !== undefined || a.prune)) {
        if (a.prune && known.missing === undefined) {
          const paths = yield* Plan.rows(sql<{ path: string }>`SELECT DISTINCT path FROM keel_reservations`)
          return { _tag: "CheckPaths", paths: paths.map((row) => row.path) }
        }
        if (yield* reclaim(a, known.missing, now)) decision = yield* decide(a, known.probed, now)
      }
      if (decision._tag === "Probe") return decision
      if (decision._tag === "Refused") return yield* Plan.abort(decision.error)
      const allocated = yield* write(a, decision, now)
      if (a.dryRun) return yield* Plan.abort(new DryRun(allocated))
      return allocated
    }
}
