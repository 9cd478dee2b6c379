/**
 * The cursor store's schema, tracked in `keel_cursor_migrations`.
 *
 * One row per (namespace, peer). `position` is the canonical text the consumer set; `position_key`
 * is its 40-digit sort key (`Position.sortKey`), which the monotonic upsert compares. It is text,
 * not two BIGINT columns, because both parts of a Redis stream id may reach 2^64 − 1 and a signed
 * BIGINT stops at 2^63 − 1; on PostgreSQL it is `COLLATE "C"` so the comparison is bytewise
 * whatever the database's collation. `updated_at` is epoch milliseconds of the last advance.
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
    }
  ]
}
