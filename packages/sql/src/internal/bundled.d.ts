/**
 * Constants a bundler may define when it builds Keel into one file (esbuild's `define`); each is
 * read with `typeof` and is undefined wherever the code runs unbundled.
 */

/** See `Migrations.checksum`: checksums computed at build time, keyed by the exact text digested. */
declare const KEEL_MIGRATION_CHECKSUMS: ReadonlyArray<readonly [text: string, checksum: string]> | undefined
