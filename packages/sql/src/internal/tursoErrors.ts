/**
 * The Turso engine's errors, read by their text. `@tursodatabase/database` reports every engine
 * failure with napi's `code: "GenericFailure"` and no SQLite result code, so the message is all
 * there is. Each pattern maps to the SQLite code of the same condition, so that classification
 * (`DbError.classify`) and every check on a code stay one path for all SQLite engines. The
 * messages are pinned by test/TursoErrors.test.ts: an engine upgrade that rewords one fails there.
 */

/** The code the Turso engine's napi binding gives every engine failure. */
export const engineCode = "GenericFailure"

const patterns: ReadonlyArray<readonly [RegExp, string]> = [
  // Another connection (this process or, with multiprocess_wal, another one) holds the write lock.
  [/database is locked/i, "SQLITE_BUSY"],
  // A deferred transaction read an old snapshot and then tried to write (SQLite: SQLITE_BUSY_SNAPSHOT).
  [/snapshot is stale/i, "SQLITE_BUSY_SNAPSHOT"],
  // MVCC (journal_mode=mvcc, which Keel refuses at open) detected a conflicting writer.
  [/write-write conflict/i, "SQLITE_BUSY"],
  [/UNIQUE constraint failed/i, "SQLITE_CONSTRAINT_UNIQUE"],
  [/PRIMARY KEY constraint failed/i, "SQLITE_CONSTRAINT_PRIMARYKEY"],
  // 0.7.x: "FOREIGN KEY constraint failed", "deferred foreign key constraint failed on commit";
  // 0.4.x: "foreign key constraint failed".
  [/foreign key constraint failed/i, "SQLITE_CONSTRAINT_FOREIGNKEY"],
  [/NOT NULL constraint failed/i, "SQLITE_CONSTRAINT_NOTNULL"],
  [/CHECK constraint failed/i, "SQLITE_CONSTRAINT_CHECK"],
  [/database or disk is full/i, "SQLITE_FULL"]
]

/** The SQLite code a Turso engine message stands for, or undefined when it names none of them. */
export const sqliteCode = (message: string): string | undefined => {
  for (const [pattern, code] of patterns) if (pattern.test(message)) return code
  return undefined
}
