import * as SqlClient from "@effect/sql/SqlClient"
import { expect, layer } from "@effect/vitest"
import { Retry, Transaction } from "@keel/sql"
import { Faults, TestDatabase } from "@keel/testkit"
import { Duration, Effect, Either, Layer, Option, Schedule } from "effect"
import { Cursor, CursorError, type PositionKind } from "../src/index.js"

const quick = Retry.policy(Faults.quickRetry)

let namespaces = 0
const freshNamespace = (label: string) => `${label}-${++namespaces}-${Date.now()}`

const store = (namespace: string, config: Cursor.Config = {}) =>
  Cursor.make({ namespace, flushInterval: Duration.hours(1), ...config })

const storedPosition = (namespace: string, peer: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{
      position: string
    }>`SELECT position FROM keel_cursors WHERE namespace = ${namespace} AND peer = ${peer}`
    return Option.fromNullable(rows[0]?.position)
  })

/** Per kind: positions in increasing order, one that is not after the last, and malformed input. */
interface Case {
  readonly kind: PositionKind.Kind
  readonly ascending: ReadonlyArray<string>
  /** Written after the last of `ascending`: never stored (behind, or for a map incomparable). */
  readonly stale: string
  readonly malformed: ReadonlyArray<string>
  /** A head after the last position, and the lag it gives (distance, unit). */
  readonly head: string
  readonly lag: readonly [string | null, string | null]
}

const cases: ReadonlyArray<Case> = [
  {
    kind: "stream",
    ascending: ["9", "9-1", "10-0", "18446744073709551615-0"],
    stale: "1000-0",
    malformed: ["1-2-3", "-1", "01"],
    head: "18446744073709551615-5",
    lag: ["0", "milliseconds"]
  },
  {
    kind: "integer",
    ascending: ["0", "9", "10", "1000"],
    stale: "11",
    malformed: ["1-0", "x", "18446744073709551616"],
    head: "1010",
    lag: ["10", "offsets"]
  },
  {
    kind: "ms-seq",
    ascending: ["1-9", "1-10", "2-0"],
    stale: "1-11",
    malformed: ["5", "1-", "a-b"],
    head: "7-3",
    lag: ["5", "milliseconds"]
  },
  {
    kind: "lsn",
    ascending: ["0/0", "0/FFFFFFFF", "1/0", "F/16B3748", "10/0"],
    stale: "F/FFFFFFFF",
    malformed: ["0/ff", "0/016B3748", "123456789/0", "1-0"],
    head: "10/100",
    lag: ["256", "bytes"]
  },
  {
    kind: "string",
    ascending: ["2024-01-09T00:00:00Z", "2024-01-10T00:00:00Z", "b", "ba"],
    stale: "azzz",
    malformed: ["", "tab\there", "\u00e9t\u00e9"],
    head: "c",
    lag: [null, null]
  },
  {
    kind: "json-map",
    ascending: ['{"p0":5}', '{"p0":5,"p1":0}', '{"p1":3,"p0":6}'],
    stale: '{"p0":7,"p1":2}',
    malformed: ["[1]", '{"p0":-1}', '{"p0":1.5}', "{"],
    head: '{"p0":10,"p1":3,"p2":1}',
    lag: ["5", "offsets"]
  }
]

/** The canonical text of a case's position (a map's keys sorted). */
const canonical = (kind: PositionKind.Kind, text: string) =>
  kind === "json-map" ? JSON.stringify(Object.fromEntries(Object.entries(JSON.parse(text)).sort())) : text

TestDatabase.describeEach("Cursor position kinds, fencing and tools", (kind) => {
  const database = Layer.provideMerge(Faults.layer, TestDatabase.layer(kind))

  layer(database, { timeout: 120_000, excludeTestServices: true })((it) => {
    for (const c of cases) {
      it.effect(`${c.kind} positions: ordered in memory and in the database; stale writes refused`, () => {
        const ns = freshNamespace(c.kind)
        return Effect.scoped(
          Effect.gen(function* () {
            const first = yield* store(ns, { positionKind: c.kind })
            const second = yield* store(ns, { positionKind: c.kind })
            expect(first.kind).toBe(c.kind)
            for (const text of c.ascending) {
              const result = yield* first.set("p", text)
              expect(result.outcome, text).toBe("advanced")
              expect(result.position).toBe(canonical(c.kind, text))
            }
            const last = canonical(c.kind, c.ascending.at(-1) ?? "")
            expect((yield* first.set("p", c.stale)).outcome).toBe("stale")
            expect((yield* first.set("p", c.ascending.at(-1) ?? "")).outcome).toBe("unchanged")
            expect((yield* first.flush).persisted).toBe(1)
            expect(yield* storedPosition(ns, "p")).toEqual(Option.some(last))
            // Another process still holding an older position: its flush is refused by the database.
            expect((yield* second.set("p", c.ascending[0] ?? "")).outcome).toBe("advanced")
            expect((yield* second.set("p", c.stale)).outcome).not.toBe("stale")
            const flushed = yield* second.flush
            expect(flushed.persisted).toBe(0)
            expect(flushed.stale).toEqual([{ peer: "p", position: canonical(c.kind, c.stale), stored: last }])
            expect(yield* storedPosition(ns, "p")).toEqual(Option.some(last))
            expect(yield* second.get("p")).toEqual(Option.some(last))
            // Inside the caller's transaction too.
            expect(yield* Transaction.immediate(second.setInTransaction("p", c.stale))).toBe(false)
            expect(yield* storedPosition(ns, "p")).toEqual(Option.some(last))
            for (const bad of c.malformed) {
              const error = yield* Effect.flip(first.set("q", bad))
              expect(error._tag, JSON.stringify(bad)).toBe("InvalidPosition")
            }
            expect(yield* first.get("q")).toEqual(Option.none())
            const lag = yield* first.lag("p", c.head)
            expect(lag).toMatchObject({
              peer: "p",
              position: last,
              behind: true,
              distance: c.lag[0],
              unit: c.lag[1]
            })
            expect((yield* first.lag("p", c.ascending.at(-1) ?? "")).behind).toBe(false)
          })
        ).pipe(Retry.withPolicy(quick))
      })
    }

    it.effect(
      "a flush of one cursor is BEGIN, one upsert, COMMIT — on PostgreSQL the upsert alone, in autocommit",
      () => {
        const ns = freshNamespace("flush-one")
        return Effect.scoped(
          Effect.gen(function* () {
            const faults = yield* Faults.Faults
            const cursors = yield* store(ns)
            // The store's first write declares the namespace (two statements more, once).
            yield* cursors.set("warm", "1-0")
            yield* cursors.flush
            yield* cursors.set("p", "1-0")
            yield* faults.clear
            expect((yield* cursors.flush).persisted).toBe(1)
            const statements = (yield* faults.statements).filter((statement) => !/^PRAGMA/i.test(statement))
            expect(statements.map((statement) => statement.split(/\s+/)[0]?.toUpperCase())).toEqual(
              kind === "postgres" ? ["INSERT"] : ["BEGIN", "INSERT", "COMMIT"]
            )
          })
        )
      }
    )

    it.effect("a namespace keeps the position kind it was declared with", () => {
      const ns = freshNamespace("declared")
      return Effect.scoped(
        Effect.gen(function* () {
          const declaring = yield* store(ns, { positionKind: "lsn" })
          yield* declaring.reset("p", "0/1")
          const error = yield* Effect.flip(store(ns, { positionKind: "integer" }))
          expect(error._tag).toBe("InvalidConfig")
          if (error._tag === "InvalidConfig") expect(error.field).toBe("positionKind")
          const bad = yield* Effect.flip(store(ns, { positionKind: "lsn", start: "0/ff" }))
          expect(bad._tag).toBe("InvalidConfig")
          const again = yield* store(ns, { positionKind: "lsn" })
          expect(yield* again.getOrStart("nobody")).toBe("0/0")
        })
      )
    })

    it.effect(
      "starting a store writes nothing; its first write declares the namespace, in that write's transaction",
      () => {
        const ns = freshNamespace("lazy")
        const declaration = Effect.flatMap(SqlClient.SqlClient, (sql) =>
          Effect.map(
            sql<{ kind: string }>`SELECT kind FROM keel_cursor_namespaces WHERE namespace = ${ns}`,
            (rows) => rows.map((row) => row.kind)
          )
        )
        return Effect.scoped(
          Effect.gen(function* () {
            const reader = yield* store(ns, { positionKind: "integer" })
            expect(reader.kind).toBe("integer")
            expect(yield* reader.get("p")).toEqual(Option.none())
            expect(Option.isNone(yield* storedPosition(ns, "p"))).toBe(true)
            expect(yield* declaration).toEqual([])
            // Refused input writes nothing either.
            expect((yield* Effect.flip(reader.set("p", "-1")))._tag).toBe("InvalidPosition")
            expect((yield* reader.flush).flushed).toBe(0)
            expect(yield* declaration).toEqual([])
            // A write in a transaction that rolls back leaves no declaration behind.
            const rolledBack = yield* Effect.either(
              Transaction.immediate(
                Effect.zipRight(reader.setInTransaction("p", "5"), Effect.fail("roll back" as const))
              )
            )
            expect(Either.isLeft(rolledBack)).toBe(true)
            expect(yield* declaration).toEqual([])
            yield* reader.set("p", "7")
            expect((yield* reader.flush).persisted).toBe(1)
            expect(yield* declaration).toEqual(["integer"])
            // Now declared: another kind is refused at start.
            expect((yield* Effect.flip(store(ns, { positionKind: "lsn" })))._tag).toBe("InvalidConfig")
            const unset = yield* store(ns)
            expect(unset.kind).toBe("integer")
          })
        ).pipe(Retry.withPolicy(quick))
      }
    )

    it.effect(
      "two stores started on an undeclared namespace with different kinds: the second to write gets KindConflict and writes nothing",
      () => {
        const ns = freshNamespace("conflict")
        return Effect.scoped(
          Effect.gen(function* () {
            const lsn = yield* store(ns, { positionKind: "lsn" })
            const integer = yield* store(ns, { positionKind: "integer" })
            yield* lsn.set("p", "0/10")
            expect((yield* lsn.flush).persisted).toBe(1)
            yield* integer.set("q", "5")
            const refused = yield* Effect.flip(integer.flush)
            expect(refused.cause._tag).toBe("KindConflict")
            if (refused.cause instanceof CursorError.KindConflict) {
              expect(refused.cause.declared).toBe("lsn")
              expect(refused.cause.wanted).toBe("integer")
            }
            expect((yield* integer.stats).dirty).toBe(1)
            const reset = yield* Effect.flip(integer.reset("q", "6"))
            expect(reset._tag === "CursorStoreError" && reset.cause._tag).toBe("KindConflict")
            expect(yield* storedPosition(ns, "q")).toEqual(Option.none())
            expect(yield* storedPosition(ns, "p")).toEqual(Option.some("0/10"))
          })
        ).pipe(Retry.withPolicy(quick))
      }
    )

    it.effect("a fenced writer replaced by a newer one is refused with Fenced and moves nothing", () => {
      const ns = freshNamespace("fenced")
      return Effect.scoped(
        Effect.gen(function* () {
          const zombie = yield* store(ns, { fenced: true })
          yield* zombie.set("p", "5")
          expect((yield* zombie.flush).persisted).toBe(1)
          const successor = yield* store(ns, { fenced: true })
          expect(successor.fence).toBe((zombie.fence ?? 0) + 1)
          yield* zombie.set("p", "100")
          const refused = yield* Effect.flip(zombie.flush)
          expect(refused._tag).toBe("FlushFailed")
          expect(refused.cause._tag).toBe("Fenced")
          if (refused.cause instanceof CursorError.Fenced) {
            expect(refused.cause.epoch).toBe(zombie.fence)
            expect(refused.cause.current).toBe(successor.fence)
          }
          expect((yield* zombie.stats).dirty).toBe(1)
          for (const write of [
            Effect.asVoid(zombie.reset("p", "1000")),
            Effect.asVoid(zombie.delete("p")),
            Effect.asVoid(Transaction.immediate(zombie.setInTransaction("p", "2000"))),
            Effect.asVoid(zombie.import([{ peer: "p", position: "3000" }]))
          ]) {
            const error = yield* Effect.flip(write)
            expect(error._tag).toBe("CursorStoreError")
            if (error._tag === "CursorStoreError") expect(error.cause._tag).toBe("Fenced")
          }
          expect(yield* storedPosition(ns, "p")).toEqual(Option.some("5"))
          yield* successor.set("p", "6")
          expect((yield* successor.flush).persisted).toBe(1)
          expect(yield* storedPosition(ns, "p")).toEqual(Option.some("6"))
          // An unfenced store of the namespace does not take the fence away.
          yield* store(ns)
          expect((yield* successor.reset("p", "7")) as string).toBe("7")
        })
      ).pipe(Retry.withPolicy(quick))
    })

    it.effect("lags: one head for every peer, or a head per peer from the caller", () => {
      const ns = freshNamespace("lag")
      return Effect.scoped(
        Effect.gen(function* () {
          const cursors = yield* store(ns, { positionKind: "integer" })
          yield* cursors.set("a", "10")
          yield* cursors.set("b", "40")
          yield* cursors.flush
          yield* cursors.set("b", "45")
          expect((yield* cursors.lags("50")).map((lag) => [lag.peer, lag.distance])).toEqual([
            ["a", "40"],
            ["b", "5"]
          ])
          const heads: Record<string, string> = { a: "10", b: "100" }
          const perPeer = yield* cursors.lags((peer) => Effect.succeed(heads[peer] ?? "0"))
          expect(perPeer.map((lag) => [lag.peer, lag.behind, lag.distance])).toEqual([
            ["a", false, "0"],
            ["b", true, "55"]
          ])
          expect((yield* Effect.flip(cursors.lags("x")))._tag).toBe("InvalidPosition")
          expect(yield* cursors.lag("nobody", "3")).toMatchObject({
            position: null,
            behind: true,
            distance: "3"
          })
        })
      )
    })

    it.effect(
      "reset tools: earliest, latest, a position, a time, a shift, with a dry run that writes nothing",
      () => {
        const ns = freshNamespace("reset-tools")
        return Effect.scoped(
          Effect.gen(function* () {
            const cursors = yield* store(ns)
            yield* cursors.set("a", "100")
            yield* cursors.set("b", "1700000000000-4")
            yield* cursors.flush
            const dry = yield* cursors.resetTo({ _tag: "Shift", by: -30n }, { peers: ["a"], dryRun: true })
            expect(dry).toEqual({ dryRun: true, changes: [{ peer: "a", from: "100", to: "70" }] })
            expect(yield* storedPosition(ns, "a")).toEqual(Option.some("100"))
            yield* cursors.resetTo({ _tag: "Shift", by: -300n }, { peers: ["a"] })
            expect(yield* storedPosition(ns, "a")).toEqual(Option.some("0"))
            const shiftStream = yield* Effect.flip(
              cursors.resetTo({ _tag: "Shift", by: 1n }, { peers: ["b"] })
            )
            expect(shiftStream._tag).toBe("InvalidPosition")
            yield* cursors.resetTo({ _tag: "Time", at: 1_600_000_000_000 }, { peers: ["b"] })
            expect(yield* storedPosition(ns, "b")).toEqual(Option.some("1600000000000-0"))
            const latest = yield* cursors.resetTo({ _tag: "Latest", head: "500" })
            expect(latest.changes.map((change) => change.to)).toEqual(["500", "500"])
            yield* cursors.resetTo(
              { _tag: "Latest", head: "0" },
              { head: (peer) => Effect.succeed(peer === "a" ? "7" : "8") }
            )
            expect(yield* storedPosition(ns, "b")).toEqual(Option.some("8"))
            yield* cursors.resetTo({ _tag: "Earliest" })
            expect(yield* storedPosition(ns, "a")).toEqual(Option.some("0"))
            expect(yield* cursors.get("a")).toEqual(Option.some("0"))
            yield* cursors.resetTo({ _tag: "Position", position: "42" }, { peers: ["c"] })
            expect(yield* storedPosition(ns, "c")).toEqual(Option.some("42"))
            const bad = yield* Effect.flip(cursors.resetTo({ _tag: "Position", position: "4-" }))
            expect(bad._tag).toBe("InvalidPosition")
            const lsn = yield* store(freshNamespace("reset-lsn"), { positionKind: "lsn" })
            yield* lsn.set("x", "0/FFFFFFF0")
            yield* lsn.flush
            expect((yield* lsn.resetTo({ _tag: "Shift", by: 32n })).changes[0]?.to).toBe("1/10")
            expect((yield* Effect.flip(lsn.resetTo({ _tag: "Time", at: 1 })))._tag).toBe("InvalidPosition")
          })
        )
      }
    )

    it.effect(
      "export and import round-trip; a bad line fails typed and writes nothing; advance skips stale",
      () => {
        const from = freshNamespace("export")
        const to = freshNamespace("import")
        return Effect.scoped(
          Effect.gen(function* () {
            const source = yield* store(from, { positionKind: "json-map" })
            yield* source.set("a", '{"x":1}')
            yield* source.set("b", '{"x":2,"y":3}')
            yield* source.flush
            const exported = yield* source.export
            expect(exported.kind).toBe("json-map")
            expect(exported.cursors.map((cursor) => cursor.peer)).toEqual(["a", "b"])
            const target = yield* store(to, { positionKind: "json-map" })
            const bad = yield* Effect.flip(
              target.import([...exported.cursors, { peer: "c", position: '{"x":"nope"}' }])
            )
            expect(bad._tag).toBe("InvalidPosition")
            if (bad._tag === "InvalidPosition") expect(bad.field).toBe("cursors[2].position")
            expect(yield* target.getAll).toEqual([])
            const twice = yield* Effect.flip(
              target.import([...exported.cursors, { peer: "a", position: '{"x":9}' }])
            )
            expect(twice._tag).toBe("InvalidPeer")
            expect(yield* target.getAll).toEqual([])
            const dry = yield* target.import(exported.cursors, { dryRun: true })
            expect(dry).toEqual({ dryRun: true, written: 2, skipped: [] })
            expect(yield* target.getAll).toEqual([])
            expect(yield* target.import(exported.cursors)).toEqual({ dryRun: false, written: 2, skipped: [] })
            expect(yield* storedPosition(to, "b")).toEqual(Option.some('{"x":2,"y":3}'))
            const older = [{ peer: "b", position: '{"x":1,"y":3}' }]
            expect(yield* target.import(older)).toEqual({ dryRun: false, written: 0, skipped: ["b"] })
            expect(yield* storedPosition(to, "b")).toEqual(Option.some('{"x":2,"y":3}'))
            expect((yield* target.import(older, { mode: "overwrite" })).written).toBe(1)
            expect(yield* storedPosition(to, "b")).toEqual(Option.some('{"x":1,"y":3}'))
          })
        )
      }
    )

    it.effect("idle expiry deletes cursors that have not advanced, keeps dirty ones, and can dry-run", () => {
      const ns = freshNamespace("idle")
      return Effect.scoped(
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const cursors = yield* store(ns)
          for (const peer of ["old", "busy", "fresh"]) yield* cursors.set(peer, "1")
          yield* cursors.flush
          const hourAgo = Date.now() - 3_600_000
          yield* sql`UPDATE keel_cursors SET updated_at = ${hourAgo}
            WHERE namespace = ${ns} AND ${sql.in("peer", ["old", "busy"])}`
          yield* cursors.set("busy", "2")
          expect(yield* cursors.expire(Duration.minutes(10), { dryRun: true })).toEqual({
            dryRun: true,
            expired: ["old"]
          })
          expect(yield* storedPosition(ns, "old")).toEqual(Option.some("1"))
          expect(yield* cursors.expire(Duration.minutes(10))).toEqual({ dryRun: false, expired: ["old"] })
          expect(yield* storedPosition(ns, "old")).toEqual(Option.none())
          expect(yield* cursors.get("old")).toEqual(Option.none())
          expect(yield* storedPosition(ns, "busy")).toEqual(Option.some("1"))
          expect(Either.isRight(yield* Effect.either(cursors.flush))).toBe(true)
          expect(yield* storedPosition(ns, "busy")).toEqual(Option.some("2"))
          // Configured, it runs in the background.
          yield* sql`UPDATE keel_cursors SET updated_at = ${hourAgo} WHERE namespace = ${ns} AND peer = ${"fresh"}`
          yield* store(ns, { idleExpiry: Duration.minutes(10) })
          yield* Effect.repeat(storedPosition(ns, "fresh"), {
            until: Option.isNone,
            schedule: Schedule.spaced(Duration.millis(50)),
            times: 200
          })
          expect(yield* storedPosition(ns, "fresh")).toEqual(Option.none())
          expect(yield* storedPosition(ns, "busy")).toEqual(Option.some("2"))
        })
      )
    })
  })
})
