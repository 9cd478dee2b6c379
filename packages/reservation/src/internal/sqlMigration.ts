/**
 * `migrate` as one plan under the allocation lock: read the reservations to move, refuse (or,
 * with `overwrite`, remove) those already at the destination keys, re-key the rest. Ports never
 * change, so no port can be handed out twice and no reservation is lost; a concurrent reserve of
 * either path waits for the lock and sees the registry before or after the whole move.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as Statement from "@effect/sql/Statement"
import * as Plan from "@keel/sql/Plan"
import { MigrationConflict } from "../ReservationError.js"
import { type Migration, type MigrationResult, type Stored, untagged } from "../ReservationStore.js"

/** A dry run's result, carried out of its plan by an abort so that its writes roll back. */
export class DryMigration {
  readonly _tag = "DryMigration"
  constructor(readonly result: MigrationResult) {}
}

/** What the plan shares with the rest of the store. */
export interface Parts {
  readonly columns: Statement.Fragment
  readonly locked: () => Generator<Plan.Instruction<never>, void, unknown>
  readonly under: (path: string) => Statement.Fragment
  /**
   * ` FOR UPDATE` on PostgreSQL, where a release of one path takes no allocation lock: the rows a
   * migration moves are locked as they are read, so such a release is ordered before or after it.
   */
  readonly forUpdate: Statement.Fragment
}

/** The migration plan over `sql`. */
export const make =
  (sql: SqlClient.SqlClient, parts: Parts) =>
  (m: Migration): Plan.Make<MigrationResult, MigrationConflict | DryMigration> =>
    function* () {
      yield* parts.locked()
      const scope = m.recursive ? parts.under(m.from) : sql`path = ${m.from}`
      const rows = yield* Plan.rows(
        sql<Stored>`SELECT ${parts.columns} FROM keel_reservations
          WHERE ${scope} ORDER BY path, tag${parts.forUpdate}`
      )
      const target = (path: string) => `${m.to}${path.slice(m.from.length)}`
      const moving = new Set(rows.map((row) => `${row.path}\u0000${row.tag}`))
      const replaced: Array<Stored> = []
      for (const row of rows) {
        const [there] = yield* Plan.rows(
          sql<Stored>`SELECT ${parts.columns} FROM keel_reservations
            WHERE path = ${target(row.path)} AND tag = ${row.tag}${parts.forUpdate}`
        )
        if (there === undefined || moving.has(`${there.path}\u0000${there.tag}`)) continue
        if (!m.overwrite) {
          return yield* Plan.abort(
            new MigrationConflict({
              path: there.path,
              tag: there.tag === untagged ? null : there.tag,
              port: Number(there.port)
            })
          )
        }
        yield* Plan.run(sql`DELETE FROM keel_reservations WHERE path = ${there.path} AND tag = ${there.tag}`)
        replaced.push(there)
      }
      const moved: Array<{ readonly from: Stored; readonly to: Stored }> = []
      for (const row of rows) {
        const to = { ...row, path: target(row.path) }
        yield* Plan.run(
          sql`UPDATE keel_reservations SET path = ${to.path} WHERE path = ${row.path} AND tag = ${row.tag}`
        )
        moved.push({ from: row, to })
      }
      const result = { moved, replaced }
      if (m.dryRun) return yield* Plan.abort(new DryMigration(result))
      return result
    }
