/**
 * The cursor store's schema, tracked in `keel_cursor_migrations`.
 *
 * One row per (namespace, peer). `position` is the canonical text the consumer set; `position_key`
 * is its 40-digit sort key (`Position.sortKey`), which the monotonic upsert compares. It is text,
 * not two BIGINT columns, because both parts of a Redis stream id may reach 2^64 − 1 and a signed
 * BIGINT stops at 2^63 − 1; on PostgreSQL it is `COLLATE "C"` so the comparison is bytewise
 * whatever the database's collation. `updated_at` is epoch milliseconds of the last advance.
 *
 * Version 2 (structured positions, fencing, idle expiry): `position_key` may be any sort key up
 * to 256 characters (a lexicographic `string` position is its own key; a `json-map` has none and
 * is compared in the process); `keel_cursor_namespaces` records each namespace's position kind and
 * its fence epoch; an index on `updated_at` serves idle expiry. SQLite cannot drop a CHECK, so the
 * table is rebuilt there, as a rowid table (the Turso engine cannot index a WITHOUT ROWID table).
 */
import type { Migrations } from "@keel/sql"

/** The cursor store's migrations. */
export const migrations: Migrations.MigrationSet = {
  name: "cursor",
  migrations: [
    {
      version: 1,
      name: "create_cursors",
      sqlite: [
        `CREATE TABLE keel_cursors (
          namespace TEXT NOT NULL,
          peer TEXT NOT NULL,
          position TEXT NOT NULL,
          position_key TEXT NOT NULL
            CHECK (length(position_key) = 40 AND position_key NOT GLOB '*[^0-9]*'),
          updated_at INTEGER NOT NULL,
          PRIMARY KEY (namespace, peer)
        ) WITHOUT ROWID`
      ],
      pg: [
        `CREATE TABLE keel_cursors (
          namespace TEXT NOT NULL,
          peer TEXT NOT NULL,
          position TEXT NOT NULL,
          position_key TEXT COLLATE "C" NOT NULL CHECK (position_key ~ '^[0-9]{40}$'),
          updated_at BIGINT NOT NULL,
          PRIMARY KEY (namespace, peer)
        )`
      ]
    },
    {
      version: 2,
      name: "position_kinds_fences",
      sqlite: [
        `CREATE TABLE keel_cursors_v2 (
          namespace TEXT NOT NULL,
          peer TEXT NOT NULL,
          position TEXT NOT NULL,
          position_key TEXT NOT NULL CHECK (length(position_key) <= 256),
          updated_at INTEGER NOT NULL,
          PRIMARY KEY (namespace, peer)
        )`,
        `INSERT INTO keel_cursors_v2 (namespace, peer, position, position_key, updated_at)
          SELECT namespace, peer, position, position_key, updated_at FROM keel_cursors`,
        `DROP TABLE keel_cursors`,
        `ALTER TABLE keel_cursors_v2 RENAME TO keel_cursors`,
        `CREATE INDEX keel_cursors_idle ON keel_cursors (namespace, updated_at)`,
        `CREATE TABLE keel_cursor_namespaces (
          namespace TEXT NOT NULL PRIMARY KEY,
          kind TEXT NOT NULL CHECK (kind IN ('stream', 'integer', 'ms-seq', 'lsn', 'string', 'json-map')),
          epoch INTEGER NOT NULL DEFAULT 0
        )`
      ],
      pg: [
        `ALTER TABLE keel_cursors DROP CONSTRAINT keel_cursors_position_key_check`,
        `ALTER TABLE keel_cursors ADD CONSTRAINT keel_cursors_position_key_length
          CHECK (length(position_key) <= 256)`,
        `CREATE INDEX keel_cursors_idle ON keel_cursors (namespace, updated_at)`,
        `CREATE TABLE keel_cursor_namespaces (
          namespace TEXT NOT NULL PRIMARY KEY,
          kind TEXT NOT NULL CHECK (kind IN ('stream', 'integer', 'ms-seq', 'lsn', 'string', 'json-map')),
          epoch BIGINT NOT NULL DEFAULT 0
        )`
      ]
    }
  ]
}
