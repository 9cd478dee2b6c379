/**
 * The reservation registry's schema, applied by `Migrations.run` (tracked in
 * `keel_reservation_migrations`).
 *
 * One row per (path, tag); the untagged reservation has tag `''` so that the primary key holds
 * for it too (SQL treats NULLs as distinct in keys). `UNIQUE (port)` is the last line of defence
 * behind the serialized allocator: two rows can never share a port. Timestamps are epoch
 * milliseconds from Effect's `Clock`.
 */
import type { Migrations } from "@keel/sql"

const createReservations = (timestamp: "INTEGER" | "BIGINT") => `CREATE TABLE keel_reservations (
  path TEXT NOT NULL,
  tag TEXT NOT NULL,
  port INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
  project TEXT,
  task TEXT,
  created_at ${timestamp} NOT NULL,
  last_used_at ${timestamp} NOT NULL,
  ttl_ms ${timestamp} CHECK (ttl_ms > 0),
  expires_at ${timestamp},
  CONSTRAINT keel_reservations_pkey PRIMARY KEY (path, tag),
  CONSTRAINT keel_reservations_port_key UNIQUE (port)
)`

const indexes = [
  "CREATE INDEX keel_reservations_expires_at ON keel_reservations (expires_at)",
  "CREATE INDEX keel_reservations_project ON keel_reservations (project)"
]

/** Every migration of the reservation registry. */
export const migrations: Migrations.MigrationSet = {
  name: "reservation",
  migrations: [
    {
      version: 1,
      name: "create_reservations",
      sqlite: [createReservations("INTEGER"), ...indexes],
      pg: [createReservations("BIGINT"), ...indexes]
    }
  ]
}
