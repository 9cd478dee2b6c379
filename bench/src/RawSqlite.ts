/**
 * The raw-driver limit's SQLite transaction: `BEGIN IMMEDIATE` (the write lock up front, as Keel
 * takes it), the body, `COMMIT`; a throw rolls back. Prepared once per connection.
 */
import type Sqlite from "better-sqlite3"

/** Runs `body` inside one immediate transaction on `db`. */
export type Immediate = <A>(body: () => A) => A

/** An immediate-transaction runner for `db`. */
export const immediate = (db: Sqlite.Database): Immediate => {
  const begin = db.prepare("BEGIN IMMEDIATE")
  const commit = db.prepare("COMMIT")
  return (body) => {
    begin.run()
    try {
      const result = body()
      commit.run()
      return result
    } catch (error) {
      if (db.inTransaction) db.exec("ROLLBACK")
      throw error
    }
  }
}
